package ingress

import (
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// serverSpans starts one server span per request, continuing an incoming
// W3C traceparent, named after echo's route template ("POST
// /bitrix24/events/:route"), never the raw URL. It replaces otelhttp on the
// hot path: otelhttp also records several HTTP histograms per request,
// which cost more CPU than the whole event decode; the ingress keeps its own
// request counter instead.
func serverSpans(tp trace.TracerProvider) echo.MiddlewareFunc {
	tracer := tp.Tracer("github.com/b24hub/b24hub/services/ingress")
	prop := eventbus.Propagator()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			switch c.Path() {
			case "/healthz", "/readyz", "/metrics": // probes and scrapes make no traces
				return next(c)
			}
			r := c.Request()
			ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tracer.Start(ctx, r.Method+" "+c.Path(),
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					semconv.HTTPRequestMethodKey.String(r.Method),
					semconv.HTTPRoute(c.Path()),
					semconv.URLPath(r.URL.Path),
					attribute.Int64("http.request.body.size", r.ContentLength),
				))
			defer span.End()
			c.SetRequest(r.WithContext(ctx))
			err := next(c)
			status := c.Response().Status
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			if status >= 500 {
				span.SetStatus(codes.Error, "")
			}
			return err
		}
	}
}
