package ingress

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// durationServer is an echo with a few routes and the request-duration
// middleware recording into a manual reader.
func durationServer(t testing.TB) (*echo.Echo, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	e := echo.New()
	e.POST("/bitrix24/events/:route", func(c echo.Context) error {
		if c.Param("route") == "busy" {
			return c.NoContent(http.StatusServiceUnavailable)
		}
		return c.NoContent(http.StatusOK)
	})
	e.GET("/fails", func(echo.Context) error { return errors.New("boom") })
	mw, err := requestDuration(e, mp.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	e.Use(mw)
	return e, reader
}

// TestRequestDuration: every answer is recorded once under its route
// template and status class — a route token, an unknown path and a
// handler's error never make a series of their own — with the declared
// buckets.
func TestRequestDuration(t *testing.T) {
	e, reader := durationServer(t)
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/bitrix24/events/a1"},
		{http.MethodPost, "/bitrix24/events/b2"},
		{http.MethodPost, "/bitrix24/events/busy"},
		{http.MethodGet, "/no/such/path"},
		{http.MethodGet, "/fails"},
	} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "http.server.request.duration" {
				continue
			}
			if m.Unit != "s" {
				t.Errorf("unit %q, want s", m.Unit)
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				if !slices.Equal(dp.Bounds, RequestDurationBuckets) {
					t.Errorf("bounds %v, want %v", dp.Bounds, RequestDurationBuckets)
				}
				if dp.Attributes.Len() != 2 {
					t.Errorf("attributes %v, want route and status class only", dp.Attributes.ToSlice())
				}
				route, _ := dp.Attributes.Value(attribute.Key("http.route"))
				class, _ := dp.Attributes.Value(attribute.Key("http.response.status_class"))
				got[[2]string{route.AsString(), class.AsString()}] += dp.Count
			}
		}
	}
	want := map[[2]string]uint64{
		{"/bitrix24/events/:route", "2xx"}: 2,
		{"/bitrix24/events/:route", "5xx"}: 1,
		{UnmatchedRoute, "4xx"}:            1,
		{"/fails", "5xx"}:                  1,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
}

// BenchmarkRequestDuration is the middleware's cost per request with the
// OpenTelemetry SDK recording, next to the same request without it
// (`go test -run '^$' -bench RequestDuration -benchmem ./services/ingress`).
// cpu-ns/op is the process's CPU time per request, which on a shared
// machine moves less than ns/op.
func BenchmarkRequestDuration(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "without"
		if on {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			e, _ := durationServer(b)
			if !on {
				e = echo.New()
				e.POST("/bitrix24/events/:route", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
			}
			req := httptest.NewRequest(http.MethodPost, "/bitrix24/events/a1", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				e.ServeHTTP(w, req)
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
