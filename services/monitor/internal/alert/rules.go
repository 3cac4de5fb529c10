// Package alert evaluates the monitor's alert rules (silence, failed probes,
// consumer error rates, dead letters, OVERLOAD_LIMIT and re-authorization
// errors) against the ledger, keeps each alert's state in PostgreSQL
// (firing, resolved; a firing alert is announced once), sends transitions
// to sinks (JSON webhook, Slack-compatible webhook, log) and exports every
// rule's state as a Prometheus gauge. Only the replica holding the lease
// evaluates and sends.
package alert

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"go.yaml.in/yaml/v3"
)

// Rule kinds.
const (
	// KindSilence fires when a portal sent no event of a type for longer
	// than MaxQuiet, counting business hours of Calendar only.
	KindSilence = "silence"
	// KindProbe fires when a portal with probing enabled received no
	// ONAPPTEST (the subscriptions service's synthetic probe) within MaxQuiet.
	KindProbe = "probe"
	// KindErrorRate fires when the share of failed attempts of a consumer
	// in Window reaches Threshold (with at least MinAttempts attempts).
	KindErrorRate = "error_rate"
	// KindDeadLetters fires when a consumer dead-lettered at least
	// Threshold events in Window.
	KindDeadLetters = "dead_letters"
	// KindErrorKind fires when attempts failed with ErrorKind (one of
	// eventbus.ErrorKinds, e.g. overload, reauthorize) at least Threshold
	// times in Window for a portal.
	KindErrorKind = "error_kind"
	// KindRetention fires when the oldest event not finished at a durable
	// consumer (unacknowledged, or pending or retrying in the ledger) is
	// older than Fraction of its stream's max age: the stream drops it at
	// that age, unseen, so the alert comes well before.
	KindRetention = "retention"
)

// RetentionRunbook is where a retention alert sends the operator.
const RetentionRunbook = "https://github.com/b24hub/b24hub/blob/main/docs/runbooks/events-stopped.md#unfinished-events-near-the-streams-retention"

// ProbeEvent is the event the synthetic probe produces.
const ProbeEvent = "ONAPPTEST"

// Duration is a time.Duration written as "10m" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler (used by the API).
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Rule is one alert rule. Which fields apply depends on Kind.
type Rule struct {
	// Name identifies the rule; unique; required. It is the gauge's "rule" label.
	Name string `yaml:"name" json:"name"`
	// Kind is one of silence, probe, error_rate, dead_letters, error_kind,
	// retention; required.
	Kind string `yaml:"kind" json:"kind"`
	// Portals are member ids (silence, probe). Empty or "*" means every
	// portal that has sent the event (the probe event for probe rules).
	Portals []string `yaml:"portals" json:"portals,omitempty"`
	// Event is the event type watched by a silence rule; required there.
	Event string `yaml:"event" json:"event,omitempty"`
	// Sources count towards a silence or probe rule. Default push,
	// offline, reconcile, onprem (replays never prove the portal is
	// talking; an on-premise installation's forwarded events do).
	Sources []string `yaml:"sources" json:"sources,omitempty"`
	// MaxQuiet is the longest allowed quiet period (silence, probe); required there.
	MaxQuiet Duration `yaml:"max_quiet" json:"max_quiet,omitempty"`
	// Calendar names a calendar; quiet time is counted only while it is
	// open. Empty means always open.
	Calendar string `yaml:"calendar" json:"calendar,omitempty"`
	// Consumers restrict error_rate, dead_letters, error_kind and retention rules.
	// Empty means every consumer.
	Consumers []string `yaml:"consumers" json:"consumers,omitempty"`
	// ErrorKind is the outcome error_kind an error_kind rule counts;
	// required there, and one of eventbus.ErrorKinds (the vocabulary
	// consumers emit), so that a misspelt kind is an error, not a rule that
	// never fires.
	ErrorKind string `yaml:"error_kind" json:"error_kind,omitempty"`
	// Window is the look-back of error_rate, dead_letters and error_kind
	// rules. Default 15m.
	Window Duration `yaml:"window" json:"window,omitempty"`
	// Threshold: a failure share in (0,1] for error_rate (default 0.5), a
	// count for dead_letters and error_kind (default 1).
	Threshold float64 `yaml:"threshold" json:"threshold,omitempty"`
	// MinAttempts is the least number of attempts in Window before an
	// error rate is judged (error_rate). Default 10.
	MinAttempts int `yaml:"min_attempts" json:"min_attempts,omitempty"`
	// Fraction of the stream's max age the oldest unfinished event may
	// reach before a retention rule fires, in (0,1). Default 0.5.
	Fraction float64 `yaml:"fraction" json:"fraction,omitempty"`
	// Runbook is linked from the alert's message. Default: the retention
	// runbook for retention rules, none for the others.
	Runbook string `yaml:"runbook" json:"runbook,omitempty"`

	cal *Calendar
}

// SinkConfig configures one notification sink.
type SinkConfig struct {
	// Name identifies the sink in the alert state; default its type.
	Name string `yaml:"name" json:"name"`
	// Type is webhook (generic JSON), slack (Slack-compatible incoming
	// webhook) or log; required.
	Type string `yaml:"type" json:"type"`
	// URL is the webhook address (webhook, slack); required there unless
	// URLEnv is set.
	URL string `yaml:"url" json:"-"`
	// URLEnv names an environment variable holding the URL (keeps secret
	// webhook addresses out of the file).
	URLEnv string `yaml:"url_env" json:"url_env,omitempty"`
	// Headers are added to webhook requests (e.g. Authorization).
	Headers map[string]string `yaml:"headers" json:"-"`
	// Timeout bounds one delivery. Default 5s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Rules is the content of the alert rules file (B24HUB_ALERT_RULES_FILE).
type Rules struct {
	// EvaluateEvery is the evaluation period. Default 30s.
	EvaluateEvery Duration `yaml:"evaluate_every" json:"evaluate_every"`
	// Calendars by name.
	Calendars map[string]*Calendar `yaml:"calendars" json:"calendars"`
	// Rules to evaluate.
	Rules []Rule `yaml:"rules" json:"rules"`
	// Sinks receive every transition (firing, resolved). Default: log only.
	Sinks []SinkConfig `yaml:"sinks" json:"sinks"`
}

// DefaultRulesYAML are the rules used when no file is configured. The
// silence rule is the seed's: no ONCRMDEALUPDATE for 10 minutes during
// business hours (Mon–Fri 09:00–18:00, UTC unless changed).
const DefaultRulesYAML = `
evaluate_every: 30s
calendars:
  business:
    timezone: UTC
    days: [mon, tue, wed, thu, fri]
    start: "09:00"
    end: "18:00"
rules:
  - name: deal-update-silence
    kind: silence
    event: ONCRMDEALUPDATE
    max_quiet: 10m
    calendar: business
  - name: probe-missing
    kind: probe
    max_quiet: 15m
  - name: consumer-error-rate
    kind: error_rate
    window: 10m
    threshold: 0.5
    min_attempts: 10
  - name: dead-letters
    kind: dead_letters
    window: 15m
    threshold: 1
  - name: overload-limit
    kind: error_kind
    error_kind: overload
    window: 15m
    threshold: 1
  - name: reauthorization
    kind: error_kind
    error_kind: reauthorize
    window: 15m
    threshold: 1
  - name: unfinished-near-retention
    kind: retention
    fraction: 0.5
sinks:
  - type: log
`

// DefaultRules returns the documented defaults.
func DefaultRules() Rules {
	r, err := ParseRules([]byte(DefaultRulesYAML), os.Getenv)
	if err != nil {
		panic("alert: default rules invalid: " + err.Error()) // a programming error, caught by tests
	}
	return r
}

// LoadRules reads path, or returns DefaultRules when path is empty.
func LoadRules(path string, getenv func(string) string) (Rules, error) {
	if path == "" {
		return DefaultRules(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Rules{}, fmt.Errorf("alert: rules file: %w", err)
	}
	r, err := ParseRules(b, getenv)
	if err != nil {
		return Rules{}, fmt.Errorf("alert: rules file %s: %w", path, err)
	}
	return r, nil
}

// ParseRules parses and validates a rules document, filling defaults.
// getenv resolves sinks' url_env.
func ParseRules(b []byte, getenv func(string) string) (Rules, error) {
	var r Rules
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil && !errors.Is(err, io.EOF) {
		return Rules{}, err
	}
	return r, r.compile(getenv)
}

func (r *Rules) compile(getenv func(string) string) error {
	if r.EvaluateEvery <= 0 {
		r.EvaluateEvery = Duration(30 * time.Second)
	}
	for name, c := range r.Calendars {
		if c == nil {
			c = &Calendar{}
			r.Calendars[name] = c
		}
		if err := c.compile(); err != nil {
			return fmt.Errorf("calendar %s: %w", name, err)
		}
	}
	seen := map[string]bool{}
	var errs []error
	for i := range r.Rules {
		rule := &r.Rules[i]
		if err := rule.compile(r.Calendars); err != nil {
			errs = append(errs, fmt.Errorf("rule %d (%s): %w", i+1, rule.Name, err))
		}
		if seen[rule.Name] {
			errs = append(errs, fmt.Errorf("rule %q defined twice", rule.Name))
		}
		seen[rule.Name] = true
	}
	if len(r.Sinks) == 0 {
		r.Sinks = []SinkConfig{{Type: "log"}}
	}
	sinkNames := map[string]bool{}
	for i := range r.Sinks {
		s := &r.Sinks[i]
		if s.Name == "" {
			s.Name = s.Type
		}
		if sinkNames[s.Name] {
			errs = append(errs, fmt.Errorf("sink %q defined twice (give it a name)", s.Name))
		}
		sinkNames[s.Name] = true
		if s.Timeout <= 0 {
			s.Timeout = Duration(5 * time.Second)
		}
		if s.URLEnv != "" && s.URL == "" {
			s.URL = getenv(s.URLEnv)
		}
		switch s.Type {
		case "log":
		case "webhook", "slack":
			if s.URL == "" {
				errs = append(errs, fmt.Errorf("sink %s: url (or url_env) is required", s.Name))
			}
		default:
			errs = append(errs, fmt.Errorf("sink %s: type %q is not webhook, slack or log", s.Name, s.Type))
		}
	}
	return errors.Join(errs...)
}

func (r *Rule) compile(cals map[string]*Calendar) error {
	if r.Name == "" {
		return errors.New("name is required")
	}
	if r.Calendar != "" {
		c, ok := cals[r.Calendar]
		if !ok {
			return fmt.Errorf("calendar %q is not defined", r.Calendar)
		}
		r.cal = c
	}
	if slices.Contains(r.Portals, "*") {
		r.Portals = nil
	}
	if len(r.Sources) == 0 {
		r.Sources = []string{"push", "offline", "reconcile", "onprem"}
	}
	if r.Window <= 0 {
		r.Window = Duration(15 * time.Minute)
	}
	switch r.Kind {
	case KindSilence:
		if r.Event == "" {
			return errors.New("event is required")
		}
		if r.MaxQuiet <= 0 {
			return errors.New("max_quiet is required")
		}
	case KindProbe:
		r.Event = ProbeEvent
		if r.MaxQuiet <= 0 {
			return errors.New("max_quiet (the probe bound) is required")
		}
	case KindErrorRate:
		if r.Threshold == 0 {
			r.Threshold = 0.5
		}
		if r.Threshold <= 0 || r.Threshold > 1 {
			return fmt.Errorf("threshold %v is not a share in (0,1]", r.Threshold)
		}
		if r.MinAttempts <= 0 {
			r.MinAttempts = 10
		}
	case KindDeadLetters, KindErrorKind:
		if r.Threshold <= 0 {
			r.Threshold = 1
		}
		if r.Kind == KindErrorKind {
			if r.ErrorKind == "" {
				return errors.New("error_kind is required")
			}
			if !eventbus.IsErrorKind(r.ErrorKind) {
				return fmt.Errorf("error_kind %q is not one consumers report (%s)", r.ErrorKind, strings.Join(eventbus.ErrorKinds(), ", "))
			}
		}
	case KindRetention:
		if r.Fraction == 0 {
			r.Fraction = 0.5
		}
		if r.Fraction <= 0 || r.Fraction >= 1 {
			return fmt.Errorf("fraction %v is not a share of the max age in (0,1)", r.Fraction)
		}
		if r.Runbook == "" {
			r.Runbook = RetentionRunbook
		}
	default:
		return fmt.Errorf("kind %q is not silence, probe, error_rate, dead_letters, error_kind or retention", r.Kind)
	}
	return nil
}
