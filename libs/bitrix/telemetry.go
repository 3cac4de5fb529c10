package bitrix

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const instrumentationName = "github.com/b24hub/b24hub/libs/bitrix"

// Attribute keys on spans and metrics.
const (
	attrMethod = attribute.Key("bitrix.method")
	attrPortal = attribute.Key("bitrix.portal")
	attrCode   = attribute.Key("bitrix.error.code")
	attrKind   = attribute.Key("bitrix.error.kind")
	attrStatus = attribute.Key("http.response.status_code")
	attrResult = attribute.Key("bitrix.outcome")
)

// telemetry holds the instruments. Metric names follow OTel conventions;
// the Prometheus exporter turns dots into underscores.
type telemetry struct {
	tracer    trace.Tracer
	calls     metric.Int64Counter
	errs      metric.Int64Counter
	duration  metric.Float64Histogram
	wait      metric.Float64Histogram
	refreshes metric.Int64Counter
}

func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) (*telemetry, error) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	t := &telemetry{tracer: tp.Tracer(instrumentationName)}
	var err, e error
	t.calls, e = m.Int64Counter("bitrix.client.calls", metric.WithDescription("REST calls by method, portal and outcome (ok or the final error code)."))
	err = errors.Join(err, e)
	t.errs, e = m.Int64Counter("bitrix.client.errors", metric.WithDescription("Failed HTTP attempts by method, portal, error code and kind, including ones that were retried."))
	err = errors.Join(err, e)
	t.duration, e = m.Float64Histogram("bitrix.client.duration", metric.WithUnit("s"), metric.WithDescription("Wall time of a REST call including retries and limiter waits."))
	err = errors.Join(err, e)
	t.wait, e = m.Float64Histogram("bitrix.client.limiter.wait", metric.WithUnit("s"), metric.WithDescription("Time spent waiting for the portal's rate limiter or an operation-limit pause."))
	err = errors.Join(err, e)
	t.refreshes, e = m.Int64Counter("bitrix.client.oauth.refreshes", metric.WithDescription("OAuth refresh exchanges by portal and outcome."))
	err = errors.Join(err, e)
	return t, err
}

func (t *telemetry) start(ctx context.Context, method, portal string) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, "bitrix "+method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrMethod.String(method), attrPortal.String(portal)))
}

func (t *telemetry) attemptFailed(ctx context.Context, method, portal string, e *Error) {
	t.errs.Add(ctx, 1, metric.WithAttributes(attrMethod.String(method), attrPortal.String(portal),
		attrCode.String(codeLabel(e)), attrKind.String(e.Kind().String())))
	trace.SpanFromContext(ctx).AddEvent("attempt failed", trace.WithAttributes(
		attrStatus.Int(e.Status), attrCode.String(e.Code), attrKind.String(e.Kind().String())))
}

func (t *telemetry) waited(ctx context.Context, portal string, d time.Duration) {
	t.wait.Record(ctx, d.Seconds(), metric.WithAttributes(attrPortal.String(portal)))
}

func (t *telemetry) finish(ctx context.Context, span trace.Span, method, portal string, status int, began time.Time, now time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
		var e *Error
		if errors.As(err, &e) {
			outcome = codeLabel(e)
			span.SetAttributes(attrCode.String(e.Code), attrKind.String(e.Kind().String()))
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	if status != 0 {
		span.SetAttributes(attrStatus.Int(status))
	}
	span.End()
	attrs := metric.WithAttributes(attrMethod.String(method), attrPortal.String(portal), attrResult.String(outcome))
	t.calls.Add(ctx, 1, attrs)
	t.duration.Record(ctx, now.Sub(began).Seconds(), metric.WithAttributes(attrMethod.String(method), attrPortal.String(portal)))
}

func (t *telemetry) refresh(ctx context.Context, portal string, e *Error) {
	outcome := "ok"
	if e != nil {
		outcome = codeLabel(e)
	}
	t.refreshes.Add(ctx, 1, metric.WithAttributes(attrPortal.String(portal), attrResult.String(outcome)))
}

// codeLabel is the error code for metrics, or the kind when the code is
// empty (common for CRM errors, §4.4).
func codeLabel(e *Error) string {
	if e.Code != "" {
		return e.Code
	}
	return e.Kind().String()
}
