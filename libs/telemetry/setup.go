package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/b24hub/b24hub/libs/buildinfo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry holds a process's providers. Create it once in main (or the
// local stack) with Setup and pass it down; call Shutdown last.
type Telemetry struct {
	// TracerProvider is the SDK's when spans are exported or a sampler is
	// configured; otherwise one that only carries trace context (see
	// Setup).
	TracerProvider trace.TracerProvider
	MeterProvider  *sdkmetric.MeterProvider
	Registry       *prometheus.Registry

	shutdownTracing func(context.Context) error
}

// Setup builds tracing and metrics for service and installs them as the
// global providers (libraries default to the globals). It honours the
// standard OpenTelemetry environment through the contrib autoexport
// package (the exporters read the process environment):
//
//   - OTEL_TRACES_EXPORTER: otlp, console or none. Unset, spans are exported
//     over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set and not exported otherwise
//     (spans still carry ids into logs and NATS headers).
//   - OTEL_EXPORTER_OTLP_PROTOCOL (and the _TRACES_/_METRICS_ variants):
//     http/protobuf (the default) or grpc, with the other OTEL_EXPORTER_OTLP_*
//     settings (endpoint, headers, timeout, TLS).
//   - OTEL_METRICS_EXPORTER: otlp or console pushes metrics in addition to
//     the Prometheus registry that /metrics serves; unset, none or
//     prometheus leave /metrics alone (the alert rules read it).
//   - OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG).
//
// When no span exporter is configured and OTEL_TRACES_SAMPLER is unset,
// spans are not recorded at all: each carries a trace and span id, as the
// SDK would give it, into the context, the traceparent of every NATS
// message and the logs, and nothing else (nothing would read the rest).
//
// The resource carries service.name (service unless OTEL_SERVICE_NAME says
// otherwise) and service.version (buildinfo.Version). An exporter name or
// protocol the SDK does not know is an error.
func Setup(ctx context.Context, service string, getenv func(string) string) (*Telemetry, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service), semconv.ServiceVersion(buildinfo.Version())),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	sexp, err := spanExporter(ctx, getenv)
	if err != nil {
		return nil, err
	}
	var tp trace.TracerProvider = unrecordedProvider{}
	shutdownTracing := func(context.Context) error { return nil }
	if sexp != nil || getenv("OTEL_TRACES_SAMPLER") != "" {
		topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if sexp != nil {
			topts = append(topts, sdktrace.WithBatcher(sexp))
		}
		sdk := sdktrace.NewTracerProvider(topts...)
		tp, shutdownTracing = sdk, sdk.Shutdown
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithNamespace("b24hub"))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("telemetry: prometheus exporter: %w", err), shutdownTracing(ctx))
	}
	mopts := []sdkmetric.Option{sdkmetric.WithReader(exp), sdkmetric.WithResource(res)}
	push, err := metricReader(ctx, getenv)
	if err != nil {
		return nil, errors.Join(err, shutdownTracing(ctx), exp.Shutdown(ctx))
	}
	if push != nil {
		mopts = append(mopts, sdkmetric.WithReader(push))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)

	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Telemetry{TracerProvider: tp, MeterProvider: mp, Registry: reg, shutdownTracing: shutdownTracing}, nil
}

// spanExporter is autoexport's exporter, or nil when spans are not to be
// exported: OTEL_TRACES_EXPORTER=none, or unset without an OTLP endpoint
// (autoexport would otherwise send to localhost:4318 and log failures).
func spanExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	if getenv("OTEL_TRACES_EXPORTER") == "" &&
		getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: span exporter (OTEL_TRACES_EXPORTER=%q, OTEL_EXPORTER_OTLP_PROTOCOL=%q): %w",
			getenv("OTEL_TRACES_EXPORTER"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return nil, nil
	}
	return exp, nil
}

// metricReader is the push reader OTEL_METRICS_EXPORTER asks for, or nil.
// "prometheus" is what /metrics already serves from the registry, so it
// does not start autoexport's second HTTP server.
func metricReader(ctx context.Context, getenv func(string) string) (sdkmetric.Reader, error) {
	switch getenv("OTEL_METRICS_EXPORTER") {
	case "", "none", "prometheus":
		return nil, nil
	}
	r, err := autoexport.NewMetricReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: metric reader (OTEL_METRICS_EXPORTER=%q, OTEL_EXPORTER_OTLP_PROTOCOL=%q): %w",
			getenv("OTEL_METRICS_EXPORTER"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), err)
	}
	return r, nil
}

// MetricsHandler serves the registry in Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops both providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var err error
	if t.shutdownTracing != nil {
		err = t.shutdownTracing(ctx)
	}
	return errors.Join(err, t.MeterProvider.Shutdown(ctx))
}
