package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/postgres"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestMaxConnsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want int32
		err  bool
	}{
		{"", 0, false}, {"8", 8, false}, {" 4 ", 4, false}, {"1", 1, false}, {"1000", 1000, false},
		{"0", 0, true}, {"-3", 0, true}, {"1001", 0, true}, {"eight", 0, true}, {"4.5", 0, true},
	} {
		got, err := postgres.MaxConnsFromEnv(func(k string) string {
			if k == postgres.MaxConnsEnv {
				return tc.v
			}
			return ""
		})
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s=%q: %d, %v; want %d, error %v", postgres.MaxConnsEnv, tc.v, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), postgres.MaxConnsEnv) {
			t.Errorf("error %q does not name the setting", err)
		}
	}
}

// TestPoolSize: the pool no longer grows with the node's CPUs (pgxpool's
// default); the URL and the setting can change it, the setting winning.
func TestPoolSize(t *testing.T) {
	const base = "postgres://u@127.0.0.1:5432/db?sslmode=disable"
	for _, tc := range []struct {
		name string
		dsn  string
		opts []postgres.Option
		want int32
	}{
		{"default", base, nil, postgres.DefaultMaxConns},
		{"url", base + "&pool_max_conns=7", nil, 7},
		{"setting over url", base + "&pool_max_conns=7", []postgres.Option{postgres.WithMaxConns(3)}, 3},
		{"unset setting", base, []postgres.Option{postgres.WithMaxConns(0)}, postgres.DefaultMaxConns},
		{"min conns follow", base + "&pool_min_conns=4", []postgres.Option{postgres.WithMaxConns(2)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := postgres.PoolConfig(tc.dsn, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MaxConns != tc.want || cfg.MinConns > cfg.MaxConns {
				t.Errorf("MaxConns %d MinConns %d, want MaxConns %d", cfg.MaxConns, cfg.MinConns, tc.want)
			}
			if cfg.ConnConfig.Tracer == nil {
				t.Error("no query tracer")
			}
		})
	}
	if _, err := postgres.PoolConfig("postgres://h/db?pool_max_conns=many"); err == nil {
		t.Error("a bad pool_max_conns was accepted")
	}
}

// TestTracingAndPoolMetrics: a query inside a recording span gets a client
// span with the statement and never its arguments; a query outside any
// trace makes no span; the pool's size and use are exported as metrics.
func TestTracingAndPoolMetrics(t *testing.T) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prevTP, prevMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetMeterProvider(prevMP) })

	pool, err := postgres.Open(ctx, pgtest.NewDatabase(t), false, postgres.WithMaxConns(3))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rec.Reset()

	if _, err := pool.Exec(ctx, "SELECT $1::text", "untraced"); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans outside any trace, want none", n)
	}
	tctx, parent := tp.Tracer("test").Start(ctx, "process")
	if _, err := pool.Exec(tctx, "SELECT $1::text", "s3cr3t-argument"); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var query sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		for _, kv := range sp.Attributes() {
			if strings.Contains(kv.Value.Emit(), "s3cr3t") {
				t.Errorf("span %q attribute %s carries the query argument", sp.Name(), kv.Key)
			}
			if kv.Key == "db.query.text" && kv.Value.AsString() == "SELECT $1::text" {
				query = sp
			}
		}
	}
	if query == nil {
		t.Fatalf("no span with the statement among %d spans", len(rec.Ended()))
	}
	if query.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("query span %q is not a child of the processing span", query.Name())
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				got[m.Name] = d.DataPoints[0].Value
			case metricdata.Sum[int64]:
				got[m.Name] = d.DataPoints[0].Value
			}
		}
	}
	if got["pgxpool.max_connections"] != 3 {
		t.Errorf("pgxpool.max_connections = %d, want 3 (metrics %v)", got["pgxpool.max_connections"], got)
	}
	if got["pgxpool.acquires"] < 2 {
		t.Errorf("pgxpool.acquires = %d, want at least 2", got["pgxpool.acquires"])
	}
}
