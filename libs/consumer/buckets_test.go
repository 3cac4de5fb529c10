package consumer

import (
	"context"
	"slices"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestHistogramBuckets: every histogram of the runtime is in seconds with
// the seconds buckets declared here, not the SDK default (0, 5, 10, 25,
// ...) that read a p95 under 5 s as about 4.75 s. A histogram added to
// newMetrics without an entry here fails the test.
func TestHistogramBuckets(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m, err := newMetrics(mp.Meter(instrumentation), "c")
	if err != nil {
		t.Fatal(err)
	}
	m.duration.Record(ctx, 0.02, m.attrs)
	m.lag.Record(ctx, 0.5, m.attrs)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	want := map[string][]float64{"consumer.duration": DurationBuckets, "consumer.lag": LagBuckets}
	seen := 0
	for _, sm := range rm.ScopeMetrics {
		for _, x := range sm.Metrics {
			h, ok := x.Data.(metricdata.Histogram[float64])
			if !ok {
				continue
			}
			seen++
			if x.Unit != "s" {
				t.Errorf("%s unit %q, want s", x.Name, x.Unit)
			}
			if !slices.Equal(h.DataPoints[0].Bounds, want[x.Name]) {
				t.Errorf("%s buckets %v, want %v", x.Name, h.DataPoints[0].Bounds, want[x.Name])
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d histograms recorded, want %d", seen, len(want))
	}
}
