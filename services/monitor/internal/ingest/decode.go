package ingest

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// Raw is the part of a JetStream message the decoders read. It keeps them
// pure functions that tests and fuzzers call without a broker.
type Raw struct {
	Subject   string
	Header    nats.Header
	Data      []byte
	StreamSeq uint64
	// Timestamp is when JetStream stored the message.
	Timestamp time.Time
}

// clean makes s storable as PostgreSQL text: valid UTF-8 without NUL bytes.
// Decoders never fail on bad text; they keep what can be kept.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// TraceID returns the W3C trace id carried in h, or "".
func TraceID(h nats.Header) string {
	if h == nil {
		return ""
	}
	sc := trace.SpanContextFromContext(eventbus.Propagator().Extract(context.Background(), eventbus.HeaderCarrier(h)))
	if !sc.TraceID().IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// DecodeEvent turns a raw event message into a ledger event. It never fails:
// every accepted event is recorded. A payload that is not an Envelope is
// recorded from its subject and headers, with the bytes as payload and
// source "unknown", so an operator can still find it.
func DecodeEvent(m Raw) (ledger.Event, bool) {
	var env eventsv1.Envelope
	ok := proto.Unmarshal(m.Data, &env) == nil
	e := ledger.Event{StreamSeq: m.StreamSeq, TraceID: TraceID(m.Header)}
	if ok {
		e.ID, e.Portal, e.Domain, e.EventType = env.GetMessageId(), env.GetMemberId(), env.GetDomain(), env.GetEvent()
		e.EntityID, e.ReplayOf, e.HandlerID, e.Route = env.GetEntityId(), env.GetReplayOf(), env.GetHandlerId(), env.GetRoute()
		e.ClientEndpoint, e.ContentType, e.Payload = env.GetClientEndpoint(), env.GetContentType(), env.GetBody()
		e.Source = eventbus.SourceName(env.GetSource())
		if env.GetReceivedAt() != nil {
			e.ReceivedAt = env.GetReceivedAt().AsTime()
		}
		if env.GetEventTs() != nil {
			e.EventTS = env.GetEventTs().AsTime()
		}
	} else {
		e.Payload = m.Data
	}
	if m.Header != nil {
		if e.ID == "" {
			e.ID = m.Header.Get(eventbus.HeaderMsgID)
		}
		if e.Source == "" {
			e.Source = m.Header.Get(eventbus.HeaderSource)
		}
	}
	if member, ev, err := eventbus.ParseRawEvent(m.Subject); err == nil {
		if e.Portal == "" {
			e.Portal = member
		}
		if e.EventType == "" {
			e.EventType = ev
		}
	}
	e.ID, e.Portal, e.Domain, e.EventType, e.EntityID = clean(e.ID), clean(e.Portal), clean(e.Domain), clean(e.EventType), clean(e.EntityID)
	e.Source, e.ReplayOf, e.HandlerID, e.Route = clean(e.Source), clean(e.ReplayOf), clean(e.HandlerID), clean(e.Route)
	e.ClientEndpoint, e.ContentType = clean(e.ClientEndpoint), clean(e.ContentType)
	if e.ID == "" {
		e.ID = "seq-" + strconv.FormatUint(m.StreamSeq, 10)
	}
	if e.Source == "" {
		e.Source = "unknown"
	}
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = m.Timestamp
	}
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = time.Now()
	}
	return e, ok
}

var outcomeStatuses = map[eventsv1.OutcomeStatus]string{
	eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE:    ledger.StatusDone,
	eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY:   ledger.StatusError,
	eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD:    ledger.StatusDead,
	eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED: ledger.StatusSkipped,
}

// DecodeOutcome turns an outcome message into an attempt. It reports false
// for a message that cannot be folded (not an Outcome, no event id, no
// consumer, unknown status); such messages are logged and acknowledged.
func DecodeOutcome(m Raw) (ledger.Attempt, bool) {
	var o eventsv1.Outcome
	if err := proto.Unmarshal(m.Data, &o); err != nil {
		return ledger.Attempt{}, false
	}
	status, ok := outcomeStatuses[o.GetStatus()]
	if !ok || o.GetEventId() == "" {
		return ledger.Attempt{}, false
	}
	consumer, member := o.GetConsumer(), o.GetMemberId()
	if rest, ok := strings.CutPrefix(m.Subject, eventbus.OutcomesPrefix+"."); ok {
		c, mem, _ := strings.Cut(rest, ".")
		if consumer == "" {
			consumer = c
		}
		if member == "" {
			member = mem
		}
	}
	if consumer == "" {
		return ledger.Attempt{}, false
	}
	a := ledger.Attempt{
		EventID: clean(o.GetEventId()), Consumer: clean(consumer), Portal: clean(member), EventType: clean(o.GetEvent()),
		EntityID: clean(o.GetEntityId()), Status: status, Attempt: int(o.GetAttempt()), Error: clean(o.GetError()),
		ErrorKind: clean(o.GetErrorKind()), TraceID: clean(o.GetTraceId()),
	}
	if o.GetDuration() != nil {
		a.Duration = o.GetDuration().AsDuration()
	}
	if o.GetAt() != nil {
		a.At = o.GetAt().AsTime()
	} else {
		a.At = m.Timestamp
	}
	if a.TraceID == "" {
		a.TraceID = TraceID(m.Header)
	}
	return a, true
}

// DecodeDeadLetter turns a dead-letter message into a ledger dead letter.
// The payload is normally the original Envelope; when it is not (the
// original could not be decoded, which is why it died), the event id comes
// from B24-Original-Msg-Id and the portal and event from the subject, and
// the event itself is not recorded (Event.ReceivedAt stays zero). It reports
// false when not even an event id and consumer can be found.
func DecodeDeadLetter(m Raw) (ledger.DeadLetter, bool) {
	h := m.Header
	if h == nil {
		h = nats.Header{}
	}
	d := ledger.DeadLetter{
		Consumer: h.Get(eventbus.HeaderDeadConsumer), Reason: h.Get(eventbus.HeaderDeadReason),
		Error: h.Get(eventbus.HeaderDeadError), StreamSeq: m.StreamSeq, At: m.Timestamp,
	}
	d.Deliveries, _ = strconv.Atoi(h.Get(eventbus.HeaderDeadDeliveries))
	var member, event string
	if rest, ok := strings.CutPrefix(m.Subject, eventbus.DeadPrefix+"."); ok {
		parts := strings.SplitN(rest, ".", 3)
		if len(parts) == 3 {
			if d.Consumer == "" {
				d.Consumer = parts[0]
			}
			member, event = parts[1], parts[2]
		}
	}
	var env eventsv1.Envelope
	if err := proto.Unmarshal(m.Data, &env); err == nil && env.GetMessageId() != "" {
		orig := Raw{Subject: eventbus.RawEvent(env.GetMemberId(), env.GetEvent()), Header: h, Data: m.Data, Timestamp: m.Timestamp}
		d.Event, _ = DecodeEvent(orig)
		d.Event.StreamSeq, _ = strconv.ParseUint(h.Get(eventbus.HeaderDeadStreamSeq), 10, 64)
	} else {
		d.Event = ledger.Event{ID: h.Get(eventbus.HeaderOriginalMsgID), Portal: member, EventType: event, TraceID: TraceID(h)}
	}
	if d.Event.ID == "" {
		d.Event.ID = h.Get(eventbus.HeaderOriginalMsgID)
	}
	if d.Event.Portal == "" {
		d.Event.Portal = member
	}
	if d.Event.EventType == "" {
		d.Event.EventType = event
	}
	if d.At.IsZero() {
		d.At = time.Now()
	}
	d.Consumer, d.Reason, d.Error = clean(d.Consumer), clean(d.Reason), clean(d.Error)
	d.Event.ID, d.Event.Portal, d.Event.EventType = clean(d.Event.ID), clean(d.Event.Portal), clean(d.Event.EventType)
	return d, d.Event.ID != "" && d.Consumer != ""
}
