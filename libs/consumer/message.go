package consumer

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// Meta identifies the event a message is about. It fills outcomes, dead
// letters, logs and span attributes.
type Meta struct {
	// EventID is the event's deterministic message id (Outcome.event_id).
	EventID string
	// MemberID is the portal's tenant key; batches are grouped by it.
	MemberID string
	// Event is the event code (ONCRMDEALUPDATE) or, for commands,
	// "<entity_type>-<action>" (deal-update), so it is a valid subject token.
	Event string
	// EntityID is the id of the entity the event is about, if any.
	EntityID string
}

// Message is one decoded message handed to a handler. Handlers must treat
// it as read-only and never acknowledge it: the runtime does.
type Message[T any] struct {
	Meta
	// Payload is the decoded message.
	Payload T
	// Subject is the subject it was published on.
	Subject string
	// Header is the message's NATS headers (read-only).
	Header nats.Header
	// Delivery is this delivery's count, starting at 1.
	Delivery uint64
	// LastDelivery is true when a failure now dead-letters the message.
	LastDelivery bool
	// StreamSeq is the message's sequence in its stream.
	StreamSeq uint64
	// Published is when the message was stored in the stream.
	Published time.Time
	// Trace is the span context the message carried in its headers (the
	// producer's span); invalid when none was sent.
	Trace trace.SpanContext
	// Logger carries consumer, member_id, event, entity_id, event_id and
	// delivery. Log with its *Context methods so trace ids are added.
	Logger *slog.Logger
}

// RawMessage is what a Decoder sees.
type RawMessage struct {
	Subject string
	Header  nats.Header
	Data    []byte
}

// Decoder turns a raw message into a payload and its Meta. An error makes
// the message undecodable: it is dead-lettered, never retried. A decoder
// must not keep data beyond the call.
type Decoder[T any] func(m RawMessage) (T, Meta, error)

// DecodeEnvelope decodes a raw Bitrix24 event (b24.events.*) into an
// eventsv1.Envelope. It fails when the payload is not an Envelope or lacks
// member_id, event or message_id.
func DecodeEnvelope(m RawMessage) (*eventsv1.Envelope, Meta, error) {
	env := &eventsv1.Envelope{}
	if err := proto.Unmarshal(m.Data, env); err != nil {
		return nil, Meta{}, fmt.Errorf("envelope: %w", err)
	}
	if env.GetMemberId() == "" || env.GetEvent() == "" || env.GetMessageId() == "" {
		return nil, Meta{}, fmt.Errorf("envelope: member_id, event and message_id are required")
	}
	return env, Meta{
		EventID:  env.GetMessageId(),
		MemberID: env.GetMemberId(),
		Event:    env.GetEvent(),
		EntityID: env.GetEntityId(),
	}, nil
}

// DecodeCommand decodes a command (b24.commands.*) into an eventsv1.Command.
// It fails when the payload is not a Command or lacks id, member_id,
// entity_type or action.
func DecodeCommand(m RawMessage) (*eventsv1.Command, Meta, error) {
	cmd := &eventsv1.Command{}
	if err := proto.Unmarshal(m.Data, cmd); err != nil {
		return nil, Meta{}, fmt.Errorf("command: %w", err)
	}
	if cmd.GetId() == "" || cmd.GetMemberId() == "" || cmd.GetEntityType() == "" || cmd.GetAction() == "" {
		return nil, Meta{}, fmt.Errorf("command: id, member_id, entity_type and action are required")
	}
	return cmd, Meta{
		EventID:  cmd.GetId(),
		MemberID: cmd.GetMemberId(),
		Event:    cmd.GetEntityType() + "-" + cmd.GetAction(),
		EntityID: cmd.GetEntityId(),
	}, nil
}

// fallbackMeta recovers what it can about a message that failed to decode:
// headers first, then the subject, so its dead letter and outcome still land
// under the right portal.
func fallbackMeta(m RawMessage) Meta {
	meta := Meta{
		EventID:  m.Header.Get(eventbus.HeaderMsgID),
		MemberID: m.Header.Get(eventbus.HeaderMemberID),
		Event:    m.Header.Get(eventbus.HeaderEvent),
		EntityID: m.Header.Get(eventbus.HeaderEntityID),
	}
	if member, event, err := eventbus.ParseRawEvent(m.Subject); err == nil {
		meta.MemberID = cmp(meta.MemberID, member)
		meta.Event = cmp(meta.Event, event)
	} else if rest, ok := strings.CutPrefix(m.Subject, eventbus.CommandsPrefix+"."); ok {
		// b24.commands.<entity_type>.<member_id>.<action>
		if parts := strings.Split(rest, "."); len(parts) == 3 {
			meta.MemberID = cmp(meta.MemberID, parts[1])
			meta.Event = cmp(meta.Event, parts[0]+"-"+parts[2])
		}
	}
	return meta
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// token returns s when it can stand as a subject token, else "unknown".
func token(s string) string {
	if eventbus.ValidToken(s) {
		return s
	}
	return "unknown"
}
