package bitrix

import (
	"context"
	"errors"
	"time"

	"github.com/b24hub/b24hub/libs/telemetry/labelcap"
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

// DurationBuckets are the bucket boundaries (seconds) of
// bitrix.client.duration: a REST call takes tens of milliseconds to
// seconds, and retries and operation-limit pauses (up to 10 minutes) stretch it.
var DurationBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// WaitBuckets are the bucket boundaries (seconds) of
// bitrix.client.limiter.wait: from a token just short (milliseconds) to an
// operation-limit pause; the B24HubRateLimitPressure alert reads the p95 against 10 s.
var WaitBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600}

// telemetry holds the instruments. Metric names follow OTel conventions;
// the Prometheus exporter turns dots into underscores.
type telemetry struct {
	portals   *labelcap.Cap // bounds bitrix.portal on metrics
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
	t := &telemetry{tracer: tp.Tracer(instrumentationName), portals: portalCapFor(mp)}
	var err, e error
	t.calls, e = m.Int64Counter("bitrix.client.calls", metric.WithDescription("REST calls by method, portal and outcome (ok or the final error code)."))
	err = errors.Join(err, e)
	t.errs, e = m.Int64Counter("bitrix.client.errors", metric.WithDescription("Failed HTTP attempts by method, portal, error code and kind, including ones that were retried."))
	err = errors.Join(err, e)
	t.duration, e = m.Float64Histogram("bitrix.client.duration", metric.WithUnit("s"), metric.WithDescription("Wall time of a REST call including retries and limiter waits."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	err = errors.Join(err, e)
	t.wait, e = m.Float64Histogram("bitrix.client.limiter.wait", metric.WithUnit("s"), metric.WithDescription("Time spent waiting for the portal's rate limiter or an operation-limit pause."),
		metric.WithExplicitBucketBoundaries(WaitBuckets...))
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
	t.errs.Add(ctx, 1, metric.WithAttributes(attrMethod.String(methodLabel(method)), attrPortal.String(t.portals.Value(portal)),
		attrCode.String(codeLabel(e)), attrKind.String(e.Kind().String())))
	trace.SpanFromContext(ctx).AddEvent("attempt failed", trace.WithAttributes(
		attrStatus.Int(e.Status), attrCode.String(e.Code), attrKind.String(e.Kind().String())))
}

func (t *telemetry) waited(ctx context.Context, portal string, d time.Duration) {
	t.wait.Record(ctx, d.Seconds(), metric.WithAttributes(attrPortal.String(t.portals.Value(portal))))
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
	m, p := attrMethod.String(methodLabel(method)), attrPortal.String(t.portals.Value(portal))
	t.calls.Add(ctx, 1, metric.WithAttributes(m, p, attrResult.String(outcome)))
	t.duration.Record(ctx, now.Sub(began).Seconds(), metric.WithAttributes(m, p))
}

func (t *telemetry) refresh(ctx context.Context, portal string, e *Error) {
	outcome := "ok"
	if e != nil {
		outcome = codeLabel(e)
	}
	t.refreshes.Add(ctx, 1, metric.WithAttributes(attrPortal.String(t.portals.Value(portal)), attrResult.String(outcome)))
}

// codeLabel is the error code for metrics when it is one the client knows,
// else the kind: the code comes from the portal's answer, so an unknown one
// must not become a new series (the kind still says what happened, and the
// span and the error keep the code).
func codeLabel(e *Error) string {
	if metricCodes[e.Code] {
		return e.Code
	}
	return e.Kind().String()
}

// metricCodes are the error codes with their own bitrix.error.code and
// bitrix.outcome label: the ones the client reacts to, plus common
// server-side failures worth telling apart on a dashboard.
var metricCodes = func() map[string]bool {
	m := map[string]bool{
		CodeQueryLimitExceeded: true, CodeOverloadLimit: true, CodeOperationTimeLimit: true,
		CodeExpiredToken: true, CodeInvalidToken: true, CodeInvalidGrant: true, CodeNoAuthFound: true,
		CodeMethodNotFound: true, CodeBatchLength: true,
		"INTERNAL_SERVER_ERROR": true, "ERROR_CORE": true, "ERROR_ARGUMENT": true,
		"ERROR_REQUIRED_PARAMETERS_MISSING": true, "ERROR_UNEXPECTED_ANSWER": true,
	}
	for c := range authCodes {
		m[c] = true
	}
	for c := range notFoundCodes {
		m[c] = true
	}
	return m
}()
