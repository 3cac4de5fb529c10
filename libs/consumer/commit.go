package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Committed is one message of a batch handed to a [CommitHandler].
type Committed struct {
	RawMessage
	// StreamSeq and Stored are the message's stream sequence and the time
	// the stream stored it (zero when the metadata cannot be read).
	StreamSeq uint64
	Stored    time.Time
}

// CommitHandler writes a batch in one transaction and returns nil once it
// is committed. It must be idempotent: after a crash between the commit
// and the acks the same messages come again. An error means nothing was
// committed; the runtime retries the same batch.
type CommitHandler func(ctx context.Context, batch []Committed) error

// CommitOptions tune a consumer registered with [RegisterCommit]. Zero
// fields take the defaults noted.
type CommitOptions struct {
	// RetryMax caps the jittered, doubling wait (from 100 ms) between
	// attempts at a failed batch and between restarts after a broker
	// error. Default 5s.
	RetryMax time.Duration
	// OnCommit, when set, is called after every committed batch with its
	// size and the handler's duration (metrics).
	OnCommit func(n int, d time.Duration)
	// OnFailure, when set, is called after every failed attempt.
	OnFailure func(err error)
	// Tracer, when set, records one "process <durable>" span per message,
	// child of the trace context in its headers, and for a batch of
	// several one "process batch <durable>" span linked to them, in which
	// the handler runs. Default: no spans (a sink writing thousands of
	// messages a second would spend more on them than on its writes).
	Tracer trace.Tracer
}

// RegisterCommit adds a consumer in batch-commit mode, for a sink such as
// a ledger that must record every message: it fetches up to
// Spec.BatchSize messages (waiting Spec.BatchWindow after the first; any
// portal mix), hands them to h and acknowledges them all once h returned
// nil. A failed batch is retried, kept in progress, until it commits or
// the drain ends (then it is left for redelivery; an error wrapped with
// [Unavailable], as [ClassifyPostgres] does, sets the
// consumer.dependency.down gauge while it lasts); nothing is naked,
// terminated or dead-lettered, no outcome is published, and the JetStream
// consumer never gives up on a message (MaxDeliver -1). Broker errors
// (stream missing, connection lost) restart the fetch loop after a
// backoff instead of stopping Run. Defaults: BatchSize 500, BatchWindow
// 20ms, AckWait 30s, MaxAckPending max(4×BatchSize, DefaultMaxAckPending); Backoff,
// MaxDeliver, Concurrency and HandlerTimeout do not apply. Same errors as
// [Register].
func RegisterCommit(r *Runtime, spec Spec, h CommitHandler, o CommitOptions) error {
	if h == nil {
		return errors.New("consumer: nil commit handler")
	}
	if spec.BatchSize <= 0 {
		spec.BatchSize = 500
	}
	if spec.BatchWindow <= 0 {
		spec.BatchWindow = 20 * time.Millisecond
	}
	if spec.MaxAckPending == 0 {
		spec.MaxAckPending = max(4*spec.BatchSize, DefaultMaxAckPending)
	}
	spec = spec.WithDefaults()
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Second
	}
	return r.add(spec, func(m *metrics) registration {
		return &commitPipeline{rt: r, sp: spec, h: h, o: o, log: r.log.With("consumer", spec.Durable),
			gate: newOutageGate(spec.Durable, r.log, m.down)}
	})
}

// commitPipeline is one consumer registered with RegisterCommit.
type commitPipeline struct {
	rt   *Runtime
	sp   Spec
	h    CommitHandler
	o    CommitOptions
	log  *slog.Logger
	gate *outageGate
}

func (c *commitPipeline) spec() Spec { return c.sp }

// config is the JetStream consumer: explicit acks, no redelivery limit and
// no server backoff (a batch being retried is kept in progress instead).
func (c *commitPipeline) config() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       c.sp.Durable,
		Description:   c.sp.Description,
		DeliverPolicy: c.sp.DeliverPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.sp.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: c.sp.MaxAckPending,
	}
	// One filter as FilterSubject, as consumers created before this mode
	// have it, so an update does not change their definition.
	if len(c.sp.FilterSubjects) == 1 {
		cfg.FilterSubject = c.sp.FilterSubjects[0]
	} else {
		cfg.FilterSubjects = c.sp.FilterSubjects
	}
	return cfg
}

func (c *commitPipeline) backOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(c.o.RetryMax), backoff.WithMaxElapsedTime(0))
}

// run fetches and commits batches until ctx ends, restarting after broker
// errors. The batch being committed when ctx ends is finished (until the
// drain timeout) and acknowledged.
func (c *commitPipeline) run(ctx, hardStop context.Context, cons jetstream.Consumer) error {
	log := c.log
	restart := c.backOff()
	for ctx.Err() == nil {
		err := c.runOnce(ctx, hardStop, cons)
		if ctx.Err() != nil {
			return nil
		}
		delay := restart.NextBackOff()
		log.WarnContext(ctx, "consumer restarting", "error", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		if cons, err = c.rt.js.CreateOrUpdateConsumer(ctx, c.sp.Stream, c.config()); err != nil {
			cons = nil
		}
		for cons == nil && ctx.Err() == nil {
			delay := restart.NextBackOff()
			log.WarnContext(ctx, "consumer not available", "error", err, "in", delay)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			if cons, err = c.rt.js.CreateOrUpdateConsumer(ctx, c.sp.Stream, c.config()); err != nil {
				cons = nil
			}
		}
	}
	return nil
}

// commitFirstWait is how long one pull waits for the first message of a
// batch; it also bounds how long runOnce runs on after ctx ends.
const commitFirstWait = 5 * time.Second

// runOnce fetches and commits batches until ctx ends or a pull fails. Each
// batch is two pulls: one message (waiting up to commitFirstWait), then
// the rest of the batch within Spec.BatchWindow. Nothing is pulled beyond
// the batch being committed, so while a batch is retried (a database
// outage) no other message waits unseen in a client buffer past its ack
// wait and comes again.
func (c *commitPipeline) runOnce(ctx, hardStop context.Context, cons jetstream.Consumer) error {
	batch := make([]jetstream.Msg, 0, c.sp.BatchSize)
	for {
		batch = batch[:0]
		fctx, cancel := context.WithTimeout(ctx, commitFirstWait)
		first, err := cons.Fetch(1, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range first.Messages() {
				batch = append(batch, m)
			}
			err = first.Error()
		}
		cancel()
		switch {
		case ctx.Err() != nil && len(batch) == 0:
			return nil
		case errors.Is(err, context.DeadlineExceeded) && len(batch) == 0:
			continue // nothing to do for a while
		case err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
			if len(batch) == 0 {
				return fmt.Errorf("consumer: fetch %s: %w", c.sp.Durable, err)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if c.sp.BatchSize > 1 && ctx.Err() == nil {
			// The server ends this pull at the window, so every message it
			// sends arrives before the batch is committed.
			rest, err := cons.Fetch(c.sp.BatchSize-1, jetstream.FetchMaxWait(max(c.sp.BatchWindow, time.Millisecond)))
			if err == nil {
				for m := range rest.Messages() {
					batch = append(batch, m)
				}
			}
		}
		c.commit(ctx, hardStop, batch)
	}
}

// commit hands batch to the handler until it commits, then acknowledges
// every message. While retrying it marks the messages in progress so
// JetStream does not redeliver them to another replica meanwhile. When ctx
// ends during retries it stops without acknowledging (the messages are
// redelivered).
func (c *commitPipeline) commit(ctx, hardStop context.Context, batch []jetstream.Msg) {
	log := c.log
	msgs := make([]Committed, len(batch))
	for i, m := range batch {
		msgs[i] = Committed{RawMessage: RawMessage{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}}
		if md, err := m.Metadata(); err == nil {
			msgs[i].StreamSeq, msgs[i].Stored = md.Sequence.Stream, md.Timestamp
		}
	}
	hctx, spans := c.startSpans(hardStop, msgs)
	defer spans.end()
	retry := c.backOff()
	lastProgress := time.Now()
	// down is the dependency the batch waits for (an error wrapped with
	// Unavailable, e.g. by ClassifyPostgres), for the dependency gauge.
	down := ""
	defer func() {
		if down != "" {
			c.gate.leave(context.WithoutCancel(ctx), down, false)
		}
	}()
	for attempt := 1; ; attempt++ {
		start := time.Now()
		// A write in progress at shutdown is finished, within the ack wait.
		wctx, cancel := context.WithTimeout(hctx, c.sp.AckWait/2)
		err := c.h(wctx, msgs)
		cancel()
		if err == nil {
			spans.written = true
			if c.o.OnCommit != nil {
				c.o.OnCommit(len(batch), time.Since(start))
			}
			for _, m := range batch {
				if err := m.Ack(); err != nil {
					// Not fatal: the message comes again and the write is idempotent.
					log.WarnContext(ctx, "ack failed", "error", err)
				}
			}
			if attempt > 1 {
				log.InfoContext(ctx, "batch committed after retries", "attempts", attempt, "batch", len(batch))
			}
			return
		}
		if c.o.OnFailure != nil {
			c.o.OnFailure(err)
		}
		if dep := dependencyOf(err); dep != down {
			if down != "" {
				c.gate.leave(context.WithoutCancel(ctx), down, false)
			}
			if down = dep; dep != "" {
				c.gate.enter(context.WithoutCancel(ctx), dep, err)
			}
		}
		spans.failed(attempt, err)
		if attempt == 1 || attempt%10 == 0 {
			log.ErrorContext(ctx, "batch not committed, retrying", "error", err, "batch", len(batch), "attempt", attempt)
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry.NextBackOff()):
		}
		if time.Since(lastProgress) > c.sp.AckWait/3 {
			for _, m := range batch {
				_ = m.InProgress()
			}
			lastProgress = time.Now()
		}
	}
}

// commitSpans are the spans of one batch: one "process" span per message,
// child of the producer's context from its headers (plus a link to it),
// so an event's trace shows where it was recorded.
type commitSpans struct {
	spans   []trace.Span
	batch   trace.Span // a batch of several messages: links to every message span
	written bool
}

// startSpans starts the spans of batch and returns the context the handler
// runs in: the message's span for a batch of one (database spans then join
// the event's trace), a batch span linked to every message otherwise.
func (c *commitPipeline) startSpans(ctx context.Context, batch []Committed) (context.Context, *commitSpans) {
	tr := c.o.Tracer
	bs := &commitSpans{}
	if tr == nil {
		return ctx, bs
	}
	bs.spans = make([]trace.Span, len(batch))
	for i, m := range batch {
		parent := eventbus.Propagator().Extract(context.Background(), eventbus.HeaderCarrier(m.Header))
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingConsumerGroupName(c.sp.Durable),
			semconv.MessagingDestinationName(m.Subject),
			semconv.MessagingMessageID(m.Header.Get(eventbus.HeaderMsgID)),
			attribute.String("messaging.nats.stream", c.sp.Stream),
			attribute.Int64("messaging.nats.stream_sequence", int64(m.StreamSeq)),
		)}
		if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
		_, bs.spans[i] = tr.Start(parent, "process "+c.sp.Durable, opts...)
	}
	if len(batch) == 1 {
		return trace.ContextWithSpan(ctx, bs.spans[0]), bs
	}
	links := make([]trace.Link, len(bs.spans))
	for i, s := range bs.spans {
		links[i] = trace.Link{SpanContext: s.SpanContext()}
	}
	var bctx context.Context
	bctx, bs.batch = tr.Start(ctx, "process batch "+c.sp.Durable,
		trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), semconv.MessagingOperationTypeProcess,
			semconv.MessagingConsumerGroupName(c.sp.Durable), semconv.MessagingBatchMessageCount(len(batch))))
	for _, s := range bs.spans { // and back, from each event's trace to the batch write
		s.AddLink(trace.Link{SpanContext: bs.batch.SpanContext()})
	}
	return bctx, bs
}

func (bs *commitSpans) each(f func(trace.Span)) {
	for _, s := range bs.spans {
		f(s)
	}
	if bs.batch != nil {
		f(bs.batch)
	}
}

// failed records a failed attempt on every span.
func (bs *commitSpans) failed(attempt int, err error) {
	bs.each(func(s trace.Span) {
		s.AddEvent("commit failed", trace.WithAttributes(attribute.Int("attempt", attempt), attribute.String("error", err.Error())))
	})
}

// end ends every span; a batch left uncommitted (shutdown during retries,
// to be redelivered) ends with an error status.
func (bs *commitSpans) end() {
	bs.each(func(s trace.Span) {
		if !bs.written {
			s.SetStatus(codes.Error, "not committed; will be redelivered")
		}
		s.End()
	})
}
