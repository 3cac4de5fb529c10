package eventbus

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ErrInvalidEnvelope is wrapped by RawEventMessage when an Envelope cannot
// become a raw-event message: no message id, a member id or event name that
// is not a subject token, or no known source.
var ErrInvalidEnvelope = errors.New("eventbus: invalid raw event envelope")

// sourceHeader maps an Envelope source to its HeaderSource value. The
// one-element slices are shared by every message: the NATS client only
// reads header values, and the publisher adds its own keys rather than
// appending to these.
var sourceHeader = map[eventsv1.Source][]string{
	eventsv1.Source_SOURCE_PUSH:      {SourcePush},
	eventsv1.Source_SOURCE_OFFLINE:   {SourceOffline},
	eventsv1.Source_SOURCE_RECONCILE: {SourceReconcile},
	eventsv1.Source_SOURCE_REPLAY:    {SourceReplay},
	eventsv1.Source_SOURCE_ONPREM:    {SourceOnPrem},
}

var protobufHeader = []string{ContentTypeProtobuf}

// SourceName is the HeaderSource value of an Envelope source ("push",
// "offline", ...), or "" for an unspecified or unknown one.
func SourceName(s eventsv1.Source) string {
	if v, ok := sourceHeader[s]; ok {
		return v[0]
	}
	return ""
}

// SourceNames lists every HeaderSource value, in the order of the Source
// enum: what a filter by source may name.
func SourceNames() []string {
	out := make([]string, 0, len(sourceHeader))
	for v := range eventsv1.Source_name {
		if name, ok := sourceHeader[eventsv1.Source(v)]; ok {
			out = append(out, name[0])
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		return int(sourceValue(a) - sourceValue(b))
	})
	return out
}

func sourceValue(name string) eventsv1.Source {
	for s, v := range sourceHeader {
		if v[0] == name {
			return s
		}
	}
	return 0
}

// RawEventBuffer holds the memory of one raw-event message so a hot path
// can reuse it between messages (keep it in a sync.Pool). The message
// RawEventMessage returns points into it: reuse the buffer only after the
// message was published (Publish has copied it by the time it returns).
// The zero value is ready to use.
type RawEventBuffer struct {
	data   []byte
	values [4]string
}

// Reset drops the references the buffer holds to the last message's
// strings, so a pooled buffer does not keep them alive, and keeps its
// memory.
func (b *RawEventBuffer) Reset() {
	b.data = b.data[:0]
	b.values = [len(b.values)]string{}
}

// Cap is the capacity of the encoding buffer: a pool should not keep a
// buffer grown by an unusually large event.
func (b *RawEventBuffer) Cap() int { return cap(b.data) }

// RawEventMessage is the one way a raw event is put on the bus: the
// ingress publishes pushes and on-premise events with it, the
// subscriptions service recovered
// events, the monitor replays, and the conformance suite its fixtures, so
// every consumer sees the same message whatever its origin.
//
// The message goes to RawEvent(member id, event), is de-duplicated on the
// envelope's message id and carries the headers HeaderSource,
// HeaderContentType (ContentTypeProtobuf), HeaderMemberID, HeaderEvent,
// HeaderEntityID when the event names an entity, and HeaderOriginalMsgID
// when it replays another event. The payload is env in protobuf.
//
// buf may be nil; with a buffer the encoding and the header values reuse
// its memory (see RawEventBuffer). It returns an error wrapping
// ErrInvalidEnvelope for an envelope without message id, with a member id
// or event that is not a subject token (ValidToken) or without a known
// source.
func RawEventMessage(env *eventsv1.Envelope, buf *RawEventBuffer) (Message, error) {
	if env.GetMessageId() == "" {
		return Message{}, fmt.Errorf("%w: message id is required", ErrInvalidEnvelope)
	}
	if !ValidToken(env.GetMemberId()) {
		return Message{}, fmt.Errorf("%w: member id %q is not a subject token", ErrInvalidEnvelope, env.GetMemberId())
	}
	if !ValidToken(env.GetEvent()) {
		return Message{}, fmt.Errorf("%w: event %q is not a subject token", ErrInvalidEnvelope, env.GetEvent())
	}
	src, ok := sourceHeader[env.GetSource()]
	if !ok {
		return Message{}, fmt.Errorf("%w: source %v", ErrInvalidEnvelope, env.GetSource())
	}
	if buf == nil {
		buf = &RawEventBuffer{}
	}
	data, err := proto.MarshalOptions{}.MarshalAppend(buf.data[:0], env)
	if err != nil {
		return Message{}, fmt.Errorf("eventbus: encode envelope %s: %w", env.GetMessageId(), err)
	}
	buf.data = data
	// Sized for a push's five headers, the trace context and the message
	// id the publisher adds: eight fit the map's first group, so a push's
	// header map is one allocation and never grows.
	hdr := make(nats.Header, 8)
	hdr[HeaderSource] = src
	hdr[HeaderContentType] = protobufHeader
	hdr[HeaderMemberID] = buf.value(0, env.GetMemberId())
	hdr[HeaderEvent] = buf.value(1, env.GetEvent())
	if id := env.GetEntityId(); id != "" {
		hdr[HeaderEntityID] = buf.value(2, id)
	}
	if orig := env.GetReplayOf(); orig != "" {
		hdr[HeaderOriginalMsgID] = buf.value(3, orig)
	}
	return Message{Subject: RawEvent(env.GetMemberId(), env.GetEvent()), MsgID: env.GetMessageId(), Data: data, Header: hdr}, nil
}

// value returns s as a one-element header value backed by the buffer, so
// it costs no allocation. Its capacity is one: an Add to the header copies
// rather than overwrites the next value.
func (b *RawEventBuffer) value(i int, s string) []string {
	b.values[i] = s
	return b.values[i : i+1 : i+1]
}

// Push describes an event a portal pushed, as the ingress accepted it.
type Push struct {
	// Event is the decoded event (required).
	Event *b24event.Event
	// MessageID is its de-duplication id, b24event.MessageID(Event).
	MessageID string
	// ContentType and Body are the POST's content type and its body with
	// every secret removed (b24event.Body.Redacted).
	ContentType string
	Body        []byte
	// Domain is the portal's domain, used when the event names none.
	Domain string
	// Route is the :route segment of the URL the event came to ("" for
	// none).
	Route string
	// ReceivedAt is when the ingress received it.
	ReceivedAt time.Time
}

// Envelope is the raw-event Envelope of a push (source PUSH). The ingress
// and the conformance suite's stand-in ingress both build it here, so a
// consumer is tested against exactly what production publishes.
func (p Push) Envelope() *eventsv1.Envelope {
	ev := p.Event
	domain := ev.Domain
	if domain == "" {
		domain = p.Domain
	}
	env := &eventsv1.Envelope{
		MessageId:      p.MessageID,
		MemberId:       ev.MemberID,
		Domain:         domain,
		Event:          ev.Name,
		HandlerId:      ev.HandlerID,
		ReceivedAt:     timestamppb.New(p.ReceivedAt),
		Source:         eventsv1.Source_SOURCE_PUSH,
		ContentType:    p.ContentType,
		Body:           p.Body,
		EntityId:       ev.EntityID,
		Route:          p.Route,
		ClientEndpoint: ev.ClientEndpoint,
	}
	if !ev.TS.IsZero() {
		env.EventTs = timestamppb.New(ev.TS)
	}
	return env
}
