package telemetry

import (
	"context"
	"os"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestUnrecordedSpansCarryTheSDKsContext: without an exporter or a
// sampler, Setup's spans record nothing, and the span context each one
// puts into its context is the one the SDK with its default sampler gives
// for the same parent: the parent's trace id, flags and state, or a new
// sampled trace; always a new span id.
func TestUnrecordedSpansCarryTheSDKsContext(t *testing.T) {
	otelEnv(t, nil)
	tel, err := Setup(context.Background(), "svc", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	if _, ok := tel.TracerProvider.(unrecordedProvider); !ok {
		t.Fatalf("TracerProvider %T, want unrecordedProvider without an exporter or a sampler", tel.TracerProvider)
	}
	sdk := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })

	remote := func(flags trace.TraceFlags) context.Context {
		ts, err := trace.ParseTraceState("vendor=x")
		if err != nil {
			t.Fatal(err)
		}
		return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: [16]byte{1}, SpanID: [8]byte{2}, TraceFlags: flags, TraceState: ts, Remote: true}))
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		opts []trace.SpanStartOption
	}{
		{"new trace", context.Background(), nil},
		{"sampled remote parent", remote(trace.FlagsSampled), []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}},
		{"unsampled remote parent", remote(0), nil},
		{"new root despite a parent", remote(0), []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := trace.SpanFromContext(mustStart(t, sdk, tc.ctx, tc.opts)).SpanContext()
			ctx := mustStart(t, tel.TracerProvider, tc.ctx, tc.opts)
			span := trace.SpanFromContext(ctx)
			got := span.SpanContext()
			if span.IsRecording() {
				t.Error("span is recording")
			}
			if !got.IsValid() || got.IsRemote() {
				t.Fatalf("span context %+v: want a valid local one", got)
			}
			parent := trace.SpanContextFromContext(tc.ctx)
			if got.SpanID() == parent.SpanID() {
				t.Error("span id is the parent's")
			}
			if newRoot(tc.opts) || !parent.IsValid() {
				if got.TraceID() == parent.TraceID() {
					t.Error("new trace has the parent's trace id")
				}
			} else if got.TraceID() != parent.TraceID() {
				t.Errorf("trace id %s, want the parent's %s", got.TraceID(), parent.TraceID())
			}
			if got.TraceFlags() != want.TraceFlags() || got.TraceState().String() != want.TraceState().String() {
				t.Errorf("flags %s, state %q; the SDK gives %s, %q", got.TraceFlags(), got.TraceState(), want.TraceFlags(), want.TraceState())
			}
			// What a service writes into a NATS message is what it reads back.
			hdr := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(ctx, hdr)
			if back := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), hdr)); !back.Equal(got.WithRemote(true)) {
				t.Errorf("traceparent %q reads back as %+v, want %+v", hdr["traceparent"], back, got)
			}
		})
	}
}

// TestSetupRecordsSpansWithASampler: a configured sampler keeps the SDK
// (it decides which traces are sampled), exporter or not.
func TestSetupRecordsSpansWithASampler(t *testing.T) {
	otelEnv(t, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"})
	tel, err := Setup(context.Background(), "svc", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	if _, ok := tel.TracerProvider.(*sdktrace.TracerProvider); !ok {
		t.Fatalf("TracerProvider %T, want the SDK's with OTEL_TRACES_SAMPLER set", tel.TracerProvider)
	}
}

func mustStart(t *testing.T, tp trace.TracerProvider, ctx context.Context, opts []trace.SpanStartOption) context.Context {
	t.Helper()
	ctx, span := tp.Tracer("test").Start(ctx, "op", opts...)
	span.End()
	return ctx
}

// BenchmarkStartSpan is why a process that exports no spans does not
// record them: a server span with the ingress's seven attributes, on the
// SDK (recorded, no processor: what every b24hub process did without an
// exporter) and on unrecordedProvider. go test -run '^$' -bench StartSpan
// -benchmem ./libs/telemetry
func BenchmarkStartSpan(b *testing.B) {
	sdk := sdktrace.NewTracerProvider()
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot()}
	for _, tc := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"sdk-recorded", sdk}, {"unrecorded", unrecordedProvider{}}} {
		tr := tc.tp.Tracer("bench")
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, span := tr.Start(context.Background(), "POST /bitrix24/events", opts...)
				if span.IsRecording() {
					span.SetAttributes(benchAttrs[:]...)
				}
				span.End()
			}
		})
	}
}

var benchAttrs = [...]attribute.KeyValue{
	attribute.String("http.request.method", "POST"), attribute.String("http.route", "/bitrix24/events"),
	attribute.String("url.path", "/bitrix24/events"), attribute.Int64("http.request.body.size", 959),
	attribute.Int("http.response.status_code", 200), attribute.String("b24.member_id", "a223c6b3710f85df22e9377d6c4f7553"),
	attribute.String("b24.event", "ONCRMDEALUPDATE"),
}
