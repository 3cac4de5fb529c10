package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/telemetry/labelcap"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// publishTimeout bounds waiting for a PubAck of an outcome or dead letter.
const publishTimeout = 5 * time.Second

// outcomePatience is how long an outcome is published again while the
// broker does not confirm it (an outage, a restart). The ack that follows
// the outcome is buffered by the NATS client and reaches the server once it
// is back, so giving up on the outcome sooner would leave the ledger showing
// the previous attempt for an event that was in fact done. The message is
// still held (InProgress) meanwhile, so it is not redelivered.
const outcomePatience = 3 * publishTimeout

// settle applies the decision for one message: dead-letter if needed,
// publish the outcome, then ack, nak or term. It always ends span.
func (p *pipeline[T]) settle(ctx context.Context, span trace.Span, d *delivery[T], herr error, dur time.Duration, shutting bool) {
	defer func() {
		p.mu.Lock()
		delete(p.inflight, d)
		p.mu.Unlock()
		p.credits.give(1)
	}()
	defer span.End()
	ctx = context.WithoutCancel(ctx)
	act := Decide(p.sp, Attempt{Delivery: d.msg.Delivery, ShuttingDown: shutting}, herr)
	if act.Verb == VerbWait {
		// process waits these out; one left here is redelivered soon.
		act.Verb, act.Delay = VerbNak, p.sp.ProbeInterval
	}
	if act.Verb == VerbDead {
		if err := p.deadLetter(ctx, d, act, herr); err != nil {
			// Never terminate a message whose dead letter is not stored.
			herr = errors.Join(herr, err)
			act = Action{Verb: VerbNak, Delay: p.sp.backoff(d.msg.Delivery), Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: act.Kind}
		}
	}
	p.publishOutcome(ctx, span, d, act, herr, dur)

	var ackErr error
	switch act.Verb {
	case VerbAck:
		ackErr = d.raw.Ack()
	case VerbNak:
		if act.Delay > 0 {
			ackErr = d.raw.NakWithDelay(act.Delay)
		} else {
			ackErr = d.raw.Nak()
		}
	case VerbDead:
		ackErr = d.raw.TermWithReason(act.Reason)
	}

	status := statusName(act.Status)
	p.m.processed.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", p.sp.Durable), attribute.String("status", status))))
	p.m.duration.Record(ctx, dur.Seconds(), metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", p.sp.Durable), attribute.String("status", status))))
	if act.Status == eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY || act.Status == eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD {
		p.m.failed.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", p.sp.Durable), attribute.String("error_kind", act.Kind))))
	}
	if act.Verb == VerbDead {
		p.m.dead.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", p.sp.Durable), attribute.String("reason", act.Reason))))
	}

	span.SetAttributes(attribute.String("b24.outcome", status), attribute.String("b24.ack", act.Verb.String()))
	log := d.msg.Logger.With("outcome", status, "ack", act.Verb.String(), "duration_ms", dur.Milliseconds())
	switch act.Status {
	case eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY:
		span.RecordError(herr)
		span.SetStatus(codes.Error, act.Kind)
		log.WarnContext(ctx, "event failed; will retry", "error", herr.Error(), "error_kind", act.Kind, "retry_in", act.Delay.String())
	case eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD:
		span.RecordError(herr)
		span.SetStatus(codes.Error, act.Reason)
		log.ErrorContext(ctx, "event dead-lettered", "error", herr.Error(), "error_kind", act.Kind, "reason", act.Reason)
	case eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED:
		log.DebugContext(ctx, "event skipped", "reason", herr.Error())
	default:
		log.DebugContext(ctx, "event done")
	}
	if ackErr != nil {
		// The message comes back after AckWait; the handler is idempotent.
		log.WarnContext(ctx, "settle failed; the message will be redelivered", "ack", act.Verb.String(), "error", ackErr.Error())
	}
}

// deadLetter stores the original payload on the dead-letter stream with
// headers saying why, where and after how many deliveries.
func (p *pipeline[T]) deadLetter(ctx context.Context, d *delivery[T], act Action, herr error) error {
	h := nats.Header{}
	for k, v := range d.msg.Header {
		if k == eventbus.HeaderMsgID {
			continue
		}
		h[k] = append([]string(nil), v...)
	}
	h.Set(eventbus.HeaderOriginalMsgID, d.msg.Header.Get(eventbus.HeaderMsgID))
	h.Set(eventbus.HeaderDeadReason, act.Reason)
	h.Set(eventbus.HeaderDeadError, truncate(herr.Error(), 1024))
	h.Set(eventbus.HeaderDeadConsumer, p.sp.Durable)
	h.Set(eventbus.HeaderDeadDeliveries, strconv.FormatUint(d.msg.Delivery, 10))
	h.Set(eventbus.HeaderDeadSubject, d.msg.Subject)
	h.Set(eventbus.HeaderDeadStream, p.sp.Stream)
	h.Set(eventbus.HeaderDeadStreamSeq, strconv.FormatUint(d.msg.StreamSeq, 10))
	if d.msg.MemberID != "" {
		h.Set(eventbus.HeaderMemberID, d.msg.MemberID)
	}
	if d.msg.Event != "" {
		h.Set(eventbus.HeaderEvent, d.msg.Event)
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	_, err := p.rt.pub.Publish(ctx, eventbus.Message{
		Subject: eventbus.Dead(p.sp.Durable, token(d.msg.MemberID), token(d.msg.Event)),
		MsgID:   fmt.Sprintf("dead:%s:%s:%d", p.sp.Durable, p.sp.Stream, d.msg.StreamSeq),
		Data:    d.raw.Data(),
		Header:  h,
	})
	if err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	return nil
}

// publishOutcome reports the attempt to the monitor. A failure is logged,
// not returned: the ledger also sees the raw event, and blocking the ack on
// the monitor would turn a monitoring outage into an outage.
func (p *pipeline[T]) publishOutcome(ctx context.Context, span trace.Span, d *delivery[T], act Action, herr error, dur time.Duration) {
	traceID := d.msg.Trace.TraceID()
	if !traceID.IsValid() {
		traceID = span.SpanContext().TraceID()
	}
	o := &eventsv1.Outcome{
		EventId:  d.msg.EventID,
		Consumer: p.sp.Durable,
		Status:   act.Status,
		Attempt:  uint32(min(d.msg.Delivery, 1<<32-1)),
		Duration: durationpb.New(dur),
		TraceId:  traceID.String(),
		MemberId: d.msg.MemberID,
		Event:    d.msg.Event,
		EntityId: d.msg.EntityID,
		At:       timestamppb.Now(),
	}
	if herr != nil {
		var skip *SkipError
		if errors.As(herr, &skip) {
			o.Error = skip.Reason
		} else {
			o.Error = truncate(herr.Error(), 2048)
			o.ErrorKind = act.Kind
		}
	}
	data, err := proto.Marshal(o)
	if err == nil {
		// The same message id every time: a retry of an outcome that was
		// stored after all is dropped as a duplicate.
		msg := eventbus.Message{
			Subject: eventbus.Outcome(p.sp.Durable, token(d.msg.MemberID)),
			MsgID:   OutcomeMsgID(d.msg.EventID, p.sp.Durable, d.msg.Delivery, act.Status),
			Data:    data,
			Header:  nats.Header{eventbus.HeaderContentType: []string{eventbus.ContentTypeProtobuf}},
		}
		// A closed connection fails at once: space the attempts (about
		// 250 ms, jittered, so the outcomes of many handlers do not all
		// come back together).
		retry := backoff.NewExponentialBackOff(backoff.WithInitialInterval(250*time.Millisecond), backoff.WithMultiplier(1),
			backoff.WithRandomizationFactor(0.5), backoff.WithMaxElapsedTime(0))
		for start := time.Now(); ; {
			pctx, cancel := context.WithTimeout(ctx, publishTimeout)
			_, err = p.rt.pub.Publish(pctx, msg)
			cancel()
			again := errors.Is(err, eventbus.ErrNotConfirmed) || errors.Is(err, eventbus.ErrNoStream) // a restarted broker recovering its streams
			if !again || time.Since(start)+publishTimeout > outcomePatience {
				break
			}
			d.msg.Logger.WarnContext(ctx, "outcome not confirmed; publishing it again", "error", err.Error())
			time.Sleep(retry.NextBackOff())
		}
	}
	if err != nil {
		d.msg.Logger.WarnContext(ctx, "outcome not published", "error", err.Error())
	}
}

// OutcomeMsgID is the Nats-Msg-Id of the outcome of one attempt: the event
// id, the consumer, the attempt and its status, so a re-published outcome
// is stored once. The status is part of it because an attempt number can
// come twice: a broker killed before it saved the consumer's state
// redelivers with the delivery count it had saved, and the second attempt
// "2" that succeeds must not be dropped as a duplicate of the first
// attempt "2" that failed (the ledger would show the event failed for
// good).
func OutcomeMsgID(eventID, consumer string, attempt uint64, status eventsv1.OutcomeStatus) string {
	return eventID + ":" + consumer + ":" + strconv.FormatUint(attempt, 10) + ":" + statusName(status)
}

func statusName(s eventsv1.OutcomeStatus) string {
	switch s {
	case eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE:
		return "done"
	case eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY:
		return "retry"
	case eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD:
		return "dead"
	case eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED:
		return "skipped"
	}
	return "unknown"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// DurationBuckets are the bucket boundaries (seconds) of consumer.duration:
// a handler takes milliseconds (a database write) to tens of seconds (REST
// calls with retries), up to the consumer's AckWait.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// LagBuckets are the bucket boundaries (seconds) of consumer.lag: from
// real time (sub-second) to a backlog of hours after an outage; the
// B24HubProcessingLate alert reads the p95 against 300 s.
var LagBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600}

// metrics are the runtime's instruments for one consumer.
type metrics struct {
	processed metric.Int64Counter
	failed    metric.Int64Counter
	dead      metric.Int64Counter
	duration  metric.Float64Histogram
	lag       metric.Float64Histogram
	down      metric.Int64UpDownCounter
	attrs     metric.MeasurementOption
	// portals bounds the portal label of down (labelcap.MaxPortals).
	portals *labelcap.Cap
}

func newMetrics(m metric.Meter, consumer string) (*metrics, error) {
	var (
		out = &metrics{attrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", consumer))),
			portals: labelcap.New(labelcap.MaxPortals)}
		errs []error
		err  error
	)
	out.processed, err = m.Int64Counter("consumer.processed", metric.WithDescription("Processing attempts by outcome status."))
	errs = append(errs, err)
	out.failed, err = m.Int64Counter("consumer.failed", metric.WithDescription("Failed attempts (retried or dead-lettered) by error kind."))
	errs = append(errs, err)
	out.dead, err = m.Int64Counter("consumer.dead", metric.WithDescription("Messages dead-lettered, by reason."))
	errs = append(errs, err)
	out.duration, err = m.Float64Histogram("consumer.duration", metric.WithUnit("s"),
		metric.WithDescription("Handler time per attempt, batch included."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	errs = append(errs, err)
	out.lag, err = m.Float64Histogram("consumer.lag", metric.WithUnit("s"),
		metric.WithDescription("Time from storing a message in its stream to processing it."),
		metric.WithExplicitBucketBoundaries(LagBuckets...))
	errs = append(errs, err)
	out.down, err = m.Int64UpDownCounter("consumer.dependency.down",
		metric.WithDescription("1 while the consumer is paused because this dependency does not answer (consumer.Unavailable), else 0; "+
			"with a portal label, 1 while that portal's messages are held because it does not answer (consumer.UnavailableFor: the consumer goes on "+
			"with other portals; portals past the first 200 share portal=\"other\", which then counts them)."))
	errs = append(errs, err)
	return out, errors.Join(errs...)
}
