// Package onprem is the ingress route for on-premise Bitrix24
// installations: the b24hub.forwarder PHP module POSTs batches of PHP-level
// events it spooled, signed with the installation's secret. The route
// verifies the signature and the timestamp, publishes every event to the
// same raw-event subjects REST events use, and answers which events are
// stored so the module deletes exactly those from its spool.
package onprem

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
)

// Limits on one delivery. The module sends at most its batch size (100 by
// default) per request; the caps bound what a signed but broken or hostile
// client can make the ingress hold.
const (
	// MaxEvents is the most events one delivery may carry.
	MaxEvents = 500
	// maxModule and maxEvent bound the module id and the event name.
	maxModule = 64
	maxEvent  = 120
	// maxEntityID bounds entity_id, which becomes a header and a ledger column.
	maxEntityID = 64
)

// ErrMalformed wraps every reason ParseDelivery refuses a body for.
var ErrMalformed = errors.New("malformed body")

// Delivery is one POST from the forwarder: the installation it speaks for
// and its events, oldest first.
type Delivery struct {
	// Installation is the installation id; it must equal the signed header.
	Installation string `json:"installation"`
	// Events are in spool order; the ingress publishes them in this order.
	Events []Event `json:"events"`
}

// Event is one PHP-level event as the module captured it.
type Event struct {
	// ID is the module's UUID v4 for the event; re-sends keep it, so it
	// derives the Nats-Msg-Id.
	ID string `json:"id"`
	// Module is the Bitrix module that raised the event ("crm", or a custom
	// module's id such as "my.module").
	Module string `json:"module"`
	// Event is the event name as raised ("OnAfterCrmDealUpdate").
	Event string `json:"event"`
	// Time is when the module captured the event (RFC 3339).
	Time time.Time `json:"time"`
	// UserID is the acting user's id; null when no user was authorised
	// (an agent, a cron script, an anonymous form).
	UserID *int64 `json:"user_id"`
	// EntityID is the id of the entity the event is about when the module
	// could tell (the ID of a field array, or a scalar first argument).
	EntityID string `json:"entity_id,omitempty"`
	// Params are the handler's arguments, serialised by the module.
	Params json.RawMessage `json:"params"`

	// Raw is the event's JSON exactly as it was signed; it becomes the
	// envelope body.
	Raw json.RawMessage `json:"-"`
}

// Subject returns the event's name as a raw-event subject token: the PHP
// name upper-cased, the way Bitrix24 names REST events
// (OnAfterCrmDealUpdate → ONAFTERCRMDEALUPDATE).
func (e Event) Subject() string { return strings.ToUpper(e.Event) }

// ParseDelivery decodes and checks a delivery body. Every error wraps
// ErrMalformed and says which field of which event is wrong, so the
// administrator sees the reason on the module's admin page.
func ParseDelivery(body []byte) (*Delivery, error) {
	var wire struct {
		Installation string            `json:"installation"`
		Events       []json.RawMessage `json:"events"`
	}
	if err := strictDecode(body, &wire); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !eventbus.ValidToken(wire.Installation) || len(wire.Installation) > 64 {
		return nil, fmt.Errorf("%w: installation %q: want 1-64 letters, digits, '_' or '-'", ErrMalformed, clip(wire.Installation))
	}
	if len(wire.Events) == 0 {
		return nil, fmt.Errorf("%w: events: empty", ErrMalformed)
	}
	if len(wire.Events) > MaxEvents {
		return nil, fmt.Errorf("%w: events: %d, at most %d per delivery", ErrMalformed, len(wire.Events), MaxEvents)
	}
	d := &Delivery{Installation: wire.Installation, Events: make([]Event, len(wire.Events))}
	seen := make(map[string]bool, len(wire.Events))
	for i, raw := range wire.Events {
		ev := &d.Events[i]
		if err := strictDecode(raw, ev); err != nil {
			return nil, fmt.Errorf("%w: events[%d]: %v", ErrMalformed, i, err)
		}
		if err := ev.check(); err != nil {
			return nil, fmt.Errorf("%w: events[%d]: %v", ErrMalformed, i, err)
		}
		if seen[ev.ID] {
			return nil, fmt.Errorf("%w: events[%d]: id %s sent twice", ErrMalformed, i, ev.ID)
		}
		seen[ev.ID] = true
		ev.Raw = raw
	}
	return d, nil
}

func (e *Event) check() error {
	switch {
	case !ValidUUIDv4(e.ID):
		return fmt.Errorf("id %q: want a lower-case UUID v4", clip(e.ID))
	case !validModule(e.Module):
		return fmt.Errorf("module %q: want 1-%d lower-case letters, digits, '.' or '_'", clip(e.Module), maxModule)
	case !eventbus.ValidToken(e.Event) || len(e.Event) > maxEvent || strings.Contains(e.Event, "-"):
		return fmt.Errorf("event %q: want 1-%d letters, digits or '_'", clip(e.Event), maxEvent)
	case e.Time.IsZero():
		return errors.New("time: required (RFC 3339)")
	case e.UserID != nil && *e.UserID < 0:
		return fmt.Errorf("user_id %d: want a positive id or null", *e.UserID)
	case e.EntityID != "" && (!eventbus.ValidToken(e.EntityID) || len(e.EntityID) > maxEntityID):
		return fmt.Errorf("entity_id %q: want 1-%d letters, digits, '_' or '-'", clip(e.EntityID), maxEntityID)
	case len(e.Params) == 0 || e.Params[0] != '[':
		return errors.New("params: want a JSON array of the handler's arguments")
	}
	return nil
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// anything after the value: the module and the ingress share one schema,
// and a field the ingress does not know would be silently lost.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// ValidUUIDv4 reports whether s is a canonical lower-case UUID of version 4
// and the RFC 4122 variant, the form the module generates.
func ValidUUIDv4(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return s[14] == '4' && strings.IndexByte("89ab", s[19]) >= 0
}

func validModule(s string) bool {
	if s == "" || len(s) > maxModule {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// clip shortens a value quoted in an error, so a hostile body cannot make
// the answer (and the module's stored last error) large.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
