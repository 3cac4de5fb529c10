package consumer_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/natstest"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// scopes records the instrumentation scopes a provider was asked for.
type scopes struct {
	mu    sync.Mutex
	names []string
}

func (s *scopes) add(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append(s.names, name)
}

func (s *scopes) has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.names, name)
}

type recordingTracerProvider struct {
	tracenoop.TracerProvider
	scopes
}

func (p *recordingTracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	p.add(name)
	return p.TracerProvider.Tracer(name, opts...)
}

type recordingMeterProvider struct {
	metricnoop.MeterProvider
	scopes
}

func (p *recordingMeterProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	p.add(name)
	return p.MeterProvider.Meter(name, opts...)
}

func TestWithTelemetry(t *testing.T) {
	const scope = "github.com/b24hub/b24hub/libs/consumer"
	srv := natstest.Start(t)
	nc := srv.Connect(t)
	tests := []struct {
		name          string
		tracer, meter bool // whether the host passes a provider
	}{
		{name: "neither: the global providers"},
		{name: "tracer only", tracer: true},
		{name: "meter only", meter: true},
		{name: "both", tracer: true, meter: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, mp := &recordingTracerProvider{}, &recordingMeterProvider{}
			var tpArg trace.TracerProvider
			var mpArg metric.MeterProvider
			if tt.tracer {
				tpArg = tp
			}
			if tt.meter {
				mpArg = mp
			}
			if _, err := consumer.New(nc, consumer.WithTelemetry(tpArg, mpArg)); err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := tp.has(scope); got != tt.tracer {
				t.Errorf("tracer provider used: %v, want %v", got, tt.tracer)
			}
			if got := mp.has(scope); got != tt.meter {
				t.Errorf("meter provider used: %v, want %v", got, tt.meter)
			}
		})
	}
	// The strict options keep rejecting nil: WithTelemetry is the way to
	// pass optional providers, not a change to them.
	if _, err := consumer.New(nc, consumer.WithTracerProvider(nil)); err == nil {
		t.Error("WithTracerProvider(nil) accepted")
	}
	if _, err := consumer.New(nc, consumer.WithMeterProvider(nil)); err == nil {
		t.Error("WithMeterProvider(nil) accepted")
	}
}
