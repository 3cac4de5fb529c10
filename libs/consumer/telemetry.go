package consumer

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// WithTelemetry sets the tracer and meter providers that are not nil; a nil
// one leaves the runtime on the global provider. It is for hosts whose
// dependencies make the providers optional (a service's Deps), so they pass
// them through as they are. WithTracerProvider and WithMeterProvider reject
// nil on purpose: there a nil is a provider someone meant to set.
func WithTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) Option {
	return func(r *Runtime) error {
		if tp != nil {
			if err := WithTracerProvider(tp)(r); err != nil {
				return err
			}
		}
		if mp != nil {
			return WithMeterProvider(mp)(r)
		}
		return nil
	}
}
