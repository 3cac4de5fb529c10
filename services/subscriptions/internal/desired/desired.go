// Package desired is the declared state of every portal's event
// subscriptions: which events, delivered how (push, offline queue or both),
// to which handler URL, plus which entity types are reconciled by polling
// and whether the synthetic probe runs. It is read from a YAML file
// (B24HUB_SUBSCRIPTIONS_FILE):
//
//	defaults:                       # every installed portal not listed below
//	  mode: hybrid                  # push | offline | hybrid
//	  events: [ONCRMDEALADD, ONCRMDEALUPDATE, ONTASKADD, ONTASKUPDATE]
//	  handler: https://hooks.example.com/bitrix24/events   # optional, default B24HUB_HANDLER_URL + /bitrix24/events
//	  reconcile: [deal, task]       # entity types polled for changes
//	  probe: true                   # event.test on a schedule
//	portals:
//	  - member_id: a223c6b3710f85df22e9377d6c4f7553
//	    mode: push
//	    events: [ONCRMDEALUPDATE]
//
// A portal entry replaces the defaults field by field: a field it leaves
// out is taken from defaults.
package desired

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxHandlerLen is the longest handler URL Bitrix24 stores
// (b_rest_event.EVENT_HANDLER is string(255), §1.2).
const MaxHandlerLen = 255

// Mode says how a portal's events reach b24hub.
type Mode string

// Delivery modes.
const (
	// ModePush binds online handlers: Bitrix24 POSTs each event to the
	// ingress (no resend when a POST fails; reconciliation covers that).
	ModePush Mode = "push"
	// ModeOffline binds offline handlers: events wait in the portal's queue
	// until the service pulls them (needs an admin install and, for
	// reservation mode, the rest_offline_extended feature).
	ModeOffline Mode = "offline"
	// ModeHybrid binds both: pushes for latency, the queue as a backstop.
	ModeHybrid Mode = "hybrid"
)

// Push reports whether online handlers are bound.
func (m Mode) Push() bool { return m == ModePush || m == ModeHybrid }

// Offline reports whether offline handlers are bound and the queue pulled.
func (m Mode) Offline() bool { return m == ModeOffline || m == ModeHybrid }

// Entity types that reconciliation can poll.
const (
	EntityDeal = "deal"
	EntityTask = "task"
)

// Lifecycle events every app portal gets as online handlers whatever its
// mode: uninstall and update drive the subscription manager, ONAPPTEST is the
// probe's answer. ONAPPINSTALL is bound by the app's install URL, not here.
var Lifecycle = []string{"ONAPPUNINSTALL", "ONAPPUPDATE", "ONAPPTEST"}

// OfflineNotify is bound online in offline and hybrid mode: an empty push
// that says "the queue has records" (§2.5).
const OfflineNotify = "ONOFFLINEEVENT"

// Spec is one portal's declared subscriptions.
type Spec struct {
	Mode      Mode     `yaml:"mode"`
	Events    []string `yaml:"events"`
	Handler   string   `yaml:"handler"`
	Reconcile []string `yaml:"reconcile"`
	Probe     *bool    `yaml:"probe"`
}

// ProbeEnabled reports whether the synthetic probe runs (default true).
func (s Spec) ProbeEnabled() bool { return s.Probe == nil || *s.Probe }

// Binding is one event.bind row: an online handler (Event+Handler) or an
// offline one (Offline, no handler).
type Binding struct {
	Event   string `json:"event"`
	Handler string `json:"handler,omitempty"`
	Offline bool   `json:"offline"`
}

// String renders b for humans.
func (b Binding) String() string {
	if b.Offline {
		return b.Event + " (offline)"
	}
	return b.Event + " -> " + b.Handler
}

// Bindings returns the event.bind rows s asks for, sorted: online handlers
// for the declared events (push, hybrid), offline handlers for them
// (offline, hybrid), ONOFFLINEEVENT (offline, hybrid) and the lifecycle
// events.
func (s Spec) Bindings() []Binding {
	var out []Binding
	online := map[string]bool{}
	for _, e := range Lifecycle {
		online[e] = true
	}
	if s.Mode.Offline() {
		online[OfflineNotify] = true
		for _, e := range s.Events {
			out = append(out, Binding{Event: e, Offline: true})
		}
	}
	if s.Mode.Push() {
		for _, e := range s.Events {
			online[e] = true
		}
	}
	for e := range online {
		out = append(out, Binding{Event: e, Handler: s.Handler})
	}
	slices.SortFunc(out, func(a, b Binding) int {
		return strings.Compare(a.String(), b.String())
	})
	return out
}

// File is the YAML document.
type File struct {
	Defaults Spec         `yaml:"defaults"`
	Portals  []PortalSpec `yaml:"portals"`
}

// PortalSpec is one portal's entry.
type PortalSpec struct {
	MemberID string `yaml:"member_id"`
	Spec     `yaml:",inline"`
}

// Set is a validated desired state.
type Set struct {
	defaults Spec
	portals  map[string]Spec
}

// Default is the state used when no file is configured: hybrid delivery
// of deal and task changes, both reconciled, probe on.
func Default(handler string) Spec {
	return Spec{
		Mode: ModeHybrid,
		Events: []string{"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE",
			"ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE"},
		Handler:   handler,
		Reconcile: []string{EntityDeal, EntityTask},
	}
}

// Load reads path; an empty path gives Default for every portal.
func Load(path, defaultHandler string) (*Set, error) {
	if path == "" {
		return NewSet(Default(defaultHandler), nil)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("desired: %w", err)
	}
	s, err := Parse(data, defaultHandler)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes a desired-subscriptions document strictly (unknown keys are
// errors) and validates it. defaultHandler fills empty handler fields.
func Parse(data []byte, defaultHandler string) (*Set, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("desired: parse: %w", err)
	}
	def := Default(defaultHandler)
	d := merge(def, f.Defaults)
	ps := map[string]Spec{}
	for i, p := range f.Portals {
		if p.MemberID == "" {
			return nil, fmt.Errorf("desired: portals[%d]: member_id is required", i)
		}
		if _, dup := ps[p.MemberID]; dup {
			return nil, fmt.Errorf("desired: portals[%d]: member_id %s listed twice", i, p.MemberID)
		}
		ps[p.MemberID] = merge(d, p.Spec)
	}
	return NewSet(d, ps)
}

// NewSet validates and normalises defaults and per-portal specs.
func NewSet(defaults Spec, portals map[string]Spec) (*Set, error) {
	var errs []error
	d, err := normalise(defaults)
	if err != nil {
		errs = append(errs, fmt.Errorf("defaults: %w", err))
	}
	s := &Set{defaults: d, portals: map[string]Spec{}}
	for m, p := range portals {
		n, err := normalise(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("portal %s: %w", m, err))
		}
		s.portals[m] = n
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("desired: %w", err)
	}
	return s, nil
}

// For returns the spec of memberID (its own entry or the defaults).
func (s *Set) For(memberID string) Spec {
	if p, ok := s.portals[memberID]; ok {
		return p
	}
	return s.defaults
}

// Listed returns the member ids with their own entry.
func (s *Set) Listed() []string {
	out := make([]string, 0, len(s.portals))
	for m := range s.portals {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

func merge(base, over Spec) Spec {
	if over.Mode != "" {
		base.Mode = over.Mode
	}
	if over.Events != nil {
		base.Events = over.Events
	}
	if over.Handler != "" {
		base.Handler = over.Handler
	}
	if over.Reconcile != nil {
		base.Reconcile = over.Reconcile
	}
	if over.Probe != nil {
		base.Probe = over.Probe
	}
	return base
}

func normalise(s Spec) (Spec, error) {
	var errs []error
	switch s.Mode {
	case ModePush, ModeOffline, ModeHybrid:
	default:
		errs = append(errs, fmt.Errorf("mode %q: want push, offline or hybrid", s.Mode))
	}
	events := make([]string, 0, len(s.Events))
	seen := map[string]bool{}
	for _, e := range s.Events {
		e = strings.ToUpper(strings.TrimSpace(e))
		if !validEvent(e) {
			errs = append(errs, fmt.Errorf("event %q: want an event code like ONCRMDEALUPDATE", e))
			continue
		}
		if e == OfflineNotify || e == "ONAPPINSTALL" || slices.Contains(Lifecycle, e) {
			continue // managed by the service itself
		}
		if !seen[e] {
			seen[e] = true
			events = append(events, e)
		}
	}
	slices.Sort(events)
	s.Events = events
	if err := CheckHandler(s.Handler); err != nil {
		errs = append(errs, err)
	}
	for _, r := range s.Reconcile {
		if r != EntityDeal && r != EntityTask {
			errs = append(errs, fmt.Errorf("reconcile %q: want deal or task", r))
		}
	}
	return s, errors.Join(errs...)
}

// CheckHandler validates a handler URL the way Bitrix24 does
// (HandlerHelper::checkCallback: http(s) and a host with a dot, §1.2) plus
// the 255-character column limit.
func CheckHandler(h string) error {
	if h == "" {
		return errors.New("handler URL is empty: set B24HUB_HANDLER_URL (the public base URL of the ingress) or handler: in the subscriptions file")
	}
	if len(h) > MaxHandlerLen {
		return fmt.Errorf("handler URL is %d characters; Bitrix24 stores at most %d (put a short route token in the path instead of a long query)", len(h), MaxHandlerLen)
	}
	u, err := url.Parse(h)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.Contains(u.Hostname(), ".") {
		return fmt.Errorf("handler URL %q: Bitrix24 needs an http(s) URL whose host contains a dot", h)
	}
	return nil
}

func validEvent(e string) bool {
	if e == "" || len(e) > 64 {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
