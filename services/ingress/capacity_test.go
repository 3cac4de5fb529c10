package ingress

import (
	"context"
	"testing"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestEventsStreamGauges: the gauges the "stream nearly full" alert divides
// report the stream's bytes and its cap as JetStream has them.
func TestEventsStreamGauges(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx := context.Background()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{EventsMaxBytes: 32 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, eventbus.RawEvent("m1", "ONCRMDEALADD"), make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	s := &Service{js: js}
	if err := s.observeEventsStream(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("")); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && len(g.DataPoints) == 1 {
				got[m.Name] = g.DataPoints[0].Value
			}
		}
	}
	if got["ingress.events_stream.limit"] != 32<<20 {
		t.Errorf("limit %d, want %d", got["ingress.events_stream.limit"], 32<<20)
	}
	if n := got["ingress.events_stream.size"]; n < 1000 || n > 2000 {
		t.Errorf("size %d, want about one 1000-byte message", n)
	}
}
