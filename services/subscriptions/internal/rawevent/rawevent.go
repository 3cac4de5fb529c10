// Package rawevent builds the raw-stream messages the subscriptions service
// publishes for events it recovered itself (offline queue, reconciliation):
// an eventsv1.Envelope whose body is a form body shaped exactly like a push
// from Bitrix24, minus every secret, so consumers cannot tell the
// difference except by Envelope.source.
package rawevent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Publisher stores a message durably; *eventbus.Publisher implements it.
type Publisher interface {
	Publish(ctx context.Context, m eventbus.Message) (*jetstream.PubAck, error)
}

// Event is a recovered event.
type Event struct {
	// MessageID is the deterministic Nats-Msg-Id (required).
	MessageID string
	// MemberID, Domain and ClientEndpoint describe the portal.
	MemberID       string
	Domain         string
	ClientEndpoint string
	// Name is the event code, e.g. ONCRMDEALUPDATE (required).
	Name string
	// Data is the event's data block, as decoded from JSON (EVENT_DATA) or
	// built by hand: maps, slices, strings, numbers and booleans.
	Data map[string]any
	// TS is when the change happened on the portal (zero: unknown).
	TS time.Time
	// Source is SOURCE_OFFLINE or SOURCE_RECONCILE.
	Source eventsv1.Source
}

// Body encodes ev as a Bitrix24 form body:
// event=...&data[...]=...&ts=...&auth[domain]=...&auth[member_id]=...
func Body(ev Event) []byte {
	fields := []b24event.Field{{Key: "event", Value: ev.Name}}
	fields = flatten(fields, "data", ev.Data)
	if !ev.TS.IsZero() {
		fields = append(fields, b24event.Field{Key: "ts", Value: strconv.FormatInt(ev.TS.Unix(), 10)})
	}
	if ev.Domain != "" {
		fields = append(fields, b24event.Field{Key: "auth[domain]", Value: ev.Domain})
	}
	if ev.ClientEndpoint != "" {
		fields = append(fields, b24event.Field{Key: "auth[client_endpoint]", Value: ev.ClientEndpoint})
	}
	fields = append(fields, b24event.Field{Key: "auth[member_id]", Value: ev.MemberID})
	return b24event.EncodeForm(fields)
}

// Build returns the message to publish for ev, built by
// eventbus.RawEventMessage like every raw event. It decodes its own body with
// the ingress's decoder, so a recovered event that the ingress would refuse
// (bad event code or member id) is refused here too, and the entity id is
// derived by the same rules.
func Build(ev Event, receivedAt time.Time) (eventbus.Message, error) {
	if ev.MessageID == "" {
		return eventbus.Message{}, fmt.Errorf("rawevent: message id is required")
	}
	body := Body(ev)
	decoded, err := b24event.Decode(b24event.ContentTypeForm, body, b24event.DefaultLimits())
	if err != nil {
		return eventbus.Message{}, fmt.Errorf("rawevent: %w", err)
	}
	parsed, err := decoded.Event()
	if err != nil {
		return eventbus.Message{}, fmt.Errorf("rawevent: %w", err)
	}
	env := &eventsv1.Envelope{
		MessageId:      ev.MessageID,
		MemberId:       parsed.MemberID,
		Domain:         ev.Domain,
		Event:          parsed.Name,
		ReceivedAt:     timestamppb.New(receivedAt),
		Source:         ev.Source,
		ContentType:    b24event.ContentTypeForm,
		Body:           decoded.Redacted(),
		EntityId:       parsed.EntityID,
		ClientEndpoint: ev.ClientEndpoint,
	}
	if !ev.TS.IsZero() {
		env.EventTs = timestamppb.New(ev.TS)
	}
	m, err := eventbus.RawEventMessage(env, nil)
	if err != nil {
		return eventbus.Message{}, fmt.Errorf("rawevent: %w", err)
	}
	return m, nil
}

// flatten appends v under key in PHP bracket notation, keys of maps sorted
// so the same data always gives the same body. Scalars become strings the
// way PHP sends them: booleans as "1"/"" and null as nothing.
func flatten(out []b24event.Field, key string, v any) []b24event.Field {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = flatten(out, key+"["+k+"]", x[k])
		}
	case []any:
		for i, e := range x {
			out = flatten(out, key+"["+strconv.Itoa(i)+"]", e)
		}
	case string:
		out = append(out, b24event.Field{Key: key, Value: x})
	case json.Number:
		out = append(out, b24event.Field{Key: key, Value: x.String()})
	case float64:
		out = append(out, b24event.Field{Key: key, Value: strconv.FormatFloat(x, 'f', -1, 64)})
	case int:
		out = append(out, b24event.Field{Key: key, Value: strconv.Itoa(x)})
	case int64:
		out = append(out, b24event.Field{Key: key, Value: strconv.FormatInt(x, 10)})
	case bool:
		if x {
			out = append(out, b24event.Field{Key: key, Value: "1"})
		} else {
			out = append(out, b24event.Field{Key: key, Value: ""})
		}
	case nil:
	default:
		out = append(out, b24event.Field{Key: key, Value: fmt.Sprint(x)})
	}
	return out
}
