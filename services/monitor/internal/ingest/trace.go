package ingest

import (
	"context"

	"github.com/b24hub/b24hub/libs/eventbus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// batchSpans are the spans of one written batch: one "process" span per
// message, child of the producer's context from the message headers (plus a
// link to it), as the consumer runtime does, so an SRE following one event
// sees its ledger write in the same trace.
type batchSpans struct {
	spans   []trace.Span
	batch   trace.Span // a batch of several messages: links to every message span
	written bool
}

// startSpans starts the spans of batch and returns the context the write
// runs in: the message's span for a batch of one (database spans then join
// the event's trace), a batch span linked to every message otherwise.
func (c *Consumer) startSpans(ctx context.Context, batch []Raw) (context.Context, *batchSpans) {
	bs := &batchSpans{}
	if c.opts.Tracer == nil {
		return ctx, bs
	}
	bs.spans = make([]trace.Span, len(batch))
	for i, m := range batch {
		parent := eventbus.Propagator().Extract(context.Background(), eventbus.HeaderCarrier(m.Header))
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingConsumerGroupName(c.spec.Durable),
			semconv.MessagingDestinationName(m.Subject),
			semconv.MessagingMessageID(m.Header.Get(eventbus.HeaderMsgID)),
			attribute.String("messaging.nats.stream", c.spec.Stream),
			attribute.Int64("messaging.nats.stream_sequence", int64(m.StreamSeq)),
		)}
		if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
		_, bs.spans[i] = c.opts.Tracer.Start(parent, "process "+c.spec.Durable, opts...)
	}
	if len(batch) == 1 {
		return trace.ContextWithSpan(ctx, bs.spans[0]), bs
	}
	links := make([]trace.Link, len(bs.spans))
	for i, s := range bs.spans {
		links[i] = trace.Link{SpanContext: s.SpanContext()}
	}
	var bctx context.Context
	bctx, bs.batch = c.opts.Tracer.Start(ctx, "process batch "+c.spec.Durable,
		trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), semconv.MessagingOperationTypeProcess,
			semconv.MessagingConsumerGroupName(c.spec.Durable), semconv.MessagingBatchMessageCount(len(batch))))
	for _, s := range bs.spans { // and back, from each event's trace to the batch write
		s.AddLink(trace.Link{SpanContext: bs.batch.SpanContext()})
	}
	return bctx, bs
}

func (bs *batchSpans) each(f func(trace.Span)) {
	for _, s := range bs.spans {
		f(s)
	}
	if bs.batch != nil {
		f(bs.batch)
	}
}

// failed records a failed write attempt on every span.
func (bs *batchSpans) failed(attempt int, err error) {
	bs.each(func(s trace.Span) {
		s.AddEvent("ledger write failed", trace.WithAttributes(attribute.Int("attempt", attempt), attribute.String("error", err.Error())))
	})
}

// ok marks the batch committed.
func (bs *batchSpans) ok() { bs.written = true }

// end ends every span; a batch left unwritten (shutdown during retries, to
// be redelivered) ends with an error status.
func (bs *batchSpans) end() {
	bs.each(func(s trace.Span) {
		if !bs.written {
			s.SetStatus(codes.Error, "not written; will be redelivered")
		}
		s.End()
	})
}
