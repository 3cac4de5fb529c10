package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// unrecordedProvider is the tracer provider of a process that exports no
// spans (no exporter configured) and samples every new trace (no
// OTEL_TRACES_SAMPLER): its spans carry trace context and nothing else.
//
// Each span gets a fresh span id, the trace id of its parent or a fresh
// one, and its parent's trace flags and trace state, or "sampled" for a
// new root: exactly the span context the SDK with its default sampler
// (parent-based, always on) gives, so traceparent headers, the trace ids
// in logs and the sampling decision a downstream service follows are the
// same. What is not done is what only an exporter would read: the span's
// name, attributes, events, links, status and timing are not recorded, so
// a span is two small allocations instead of the SDK's span record, its
// attribute copies and its end-of-span bookkeeping. The ingress spent
// about 10% of its CPU per request on recording spans that went nowhere
// (BenchmarkStartSpan and docs/benchmarks.md, "services/ingress").
type unrecordedProvider struct{ embedded.TracerProvider }

func (unrecordedProvider) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return unrecordedTracer{}
}

type unrecordedTracer struct{ embedded.Tracer }

// Start returns ctx carrying the new span's context and a span that
// records nothing (trace.SpanFromContext's non-recording span).
func (unrecordedTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	var parent trace.SpanContext
	if !newRoot(opts) {
		parent = trace.SpanContextFromContext(ctx)
	}
	cfg := trace.SpanContextConfig{SpanID: spanID(), TraceFlags: trace.FlagsSampled}
	if parent.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		cfg.TraceID = traceID()
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
	return ctx, trace.SpanFromContext(ctx)
}

// newRoot reports whether opts ask for a new root (trace.WithNewRoot).
func newRoot(opts []trace.SpanStartOption) bool {
	if len(opts) == 0 {
		return false
	}
	cfg := trace.NewSpanStartConfig(opts...)
	return cfg.NewRoot()
}

// traceID and spanID are random and never zero (zero is invalid), from
// the runtime's per-thread generator: no lock, unlike the SDK's.
func traceID() (id trace.TraceID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func spanID() (id trace.SpanID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
