package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/b24hub/b24hub/services/monitor/internal/schema"
)

var benchTypes = []string{"ONCRMDEALUPDATE", "ONCRMDEALADD", "ONTASKADD", "ONTASKUPDATE", "ONVOXIMPLANTCALLEND"}

func benchStore(b *testing.B) *ledger.Store {
	b.Helper()
	pool := pgtest.NewPool(b)
	ctx := context.Background()
	if err := schema.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	s := ledger.NewStore(pool)
	if _, err := s.MaintainPartitions(ctx, time.Now(), 30*24*time.Hour); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchEvent is a realistic raw event: ~200-byte redacted form body.
func benchEvent(i int, now time.Time) ledger.Event {
	p := "portal" + strconv.Itoa(i%50)
	return ledger.Event{ID: fmt.Sprintf("bench-%d-%d", now.UnixNano(), i), Portal: p, Domain: p + ".bitrix24.ru",
		EventType: benchTypes[i%len(benchTypes)], EntityID: strconv.Itoa(i % 10000), Source: "push", ReceivedAt: now,
		EventTS: now, TraceID: "0af7651916cd43dd8448eb211c80319c", HandlerID: "17", ContentType: "application/x-www-form-urlencoded",
		Payload: []byte("event=ONCRMDEALUPDATE&event_handler_id=17&data%5BFIELDS%5D%5BID%5D=" + strconv.Itoa(i) +
			"&ts=1700000000&auth%5Bdomain%5D=" + p + ".bitrix24.ru&auth%5Bmember_id%5D=" + p + "&auth%5Bapplication_token%5D=REDACTED"),
		StreamSeq: uint64(i)}
}

// BenchmarkIngest compares the ledger's batched write (one multi-row
// INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING plus the
// last_seen upsert, one transaction per batch) with a one-INSERT-per-event
// baseline, in the same run. The events/s metric is what to compare.
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{100, 500, 2000} {
		b.Run("batched-"+strconv.Itoa(size), func(b *testing.B) {
			s := benchStore(b)
			n := 0
			batch := make([]ledger.Event, size)
			start := time.Now()
			for b.Loop() {
				now := time.Now()
				for i := range batch {
					batch[i] = benchEvent(n+i, now)
				}
				if _, err := s.WriteEvents(ctx, batch); err != nil {
					b.Fatal(err)
				}
				n += size
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
		})
	}
	b.Run("single-insert-baseline", func(b *testing.B) {
		s := benchStore(b)
		n := 0
		start := time.Now()
		for b.Loop() {
			if err := s.InsertEventSingle(ctx, benchEvent(n, time.Now())); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	})
}

// BenchmarkSearch measures GET /api/v1/events queries (the store call the
// handler makes) against 1,000,000 events over seven days and 500,000
// deliveries, seeded with generate_series. Each iteration runs one query of
// a mix of filters; p50 and p99 over all iterations are reported.
func BenchmarkSearch(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	if err := schema.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	s := ledger.NewStore(pool)
	now := time.Now().UTC()
	if _, err := s.MaintainPartitions(ctx, now, 30*24*time.Hour); err != nil {
		b.Fatal(err)
	}
	seed := time.Now()
	for _, q := range []string{
		`INSERT INTO monitor.webhook_events (id, portal, domain, event_type, entity_id, source, received_at, event_ts,
			trace_id, content_type, payload, stream_seq)
		SELECT 'bench-' || g, 'portal' || (g % 200), 'portal' || (g % 200) || '.bitrix24.ru',
			(ARRAY['ONCRMDEALUPDATE','ONCRMDEALADD','ONTASKADD','ONTASKUPDATE','ONVOXIMPLANTCALLEND'])[1 + g % 5],
			(g % 50000)::text, (ARRAY['push','push','push','offline','reconcile'])[1 + (g / 7) % 5],
			$1::timestamptz - g * interval '600 milliseconds', $1::timestamptz - g * interval '600 milliseconds',
			md5(g::text), 'application/x-www-form-urlencoded',
			convert_to('event=X&data%5BFIELDS%5D%5BID%5D=' || g || '&ts=1700000000&auth%5Bmember_id%5D=portal' || (g % 200), 'UTF8'), g
		FROM generate_series(1, 1000000) g`,
		`INSERT INTO monitor.deliveries (event_id, consumer, portal, event_type, entity_id, status, attempts, last_error,
			first_attempt_at, last_attempt_at, duration_ms, updated_at)
		SELECT 'bench-' || g, (ARRAY['deal-sync','tasks','telephony'])[1 + g % 3], 'portal' || (g % 200), 'ONCRMDEALUPDATE',
			(g % 50000)::text,
			CASE WHEN g % 1000 = 1 THEN 'dead' WHEN g % 250 = 1 THEN 'error' WHEN g % 10 = 3 THEN 'skipped' ELSE 'done' END,
			1 + (g % 3), CASE WHEN g % 250 = 1 THEN 'QUERY_LIMIT_EXCEEDED' ELSE '' END,
			$1::timestamptz - g * interval '600 milliseconds', $1::timestamptz - g * interval '600 milliseconds', 12.5,
			$1::timestamptz - g * interval '600 milliseconds'
		FROM generate_series(1, 1000000, 2) g`,
		// Steady state: autovacuum would have run on a table this size
		// (hint bits set, visibility map for index-only scans).
		`VACUUM ANALYZE monitor.webhook_events`,
		`VACUUM ANALYZE monitor.deliveries`,
	} {
		args := []any{now}
		if q[:6] == "VACUUM" {
			args = nil
		}
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded 1,000,000 events and 500,000 deliveries in %s", time.Since(seed).Round(time.Second))

	first, err := s.SearchEvents(ctx, ledger.EventFilter{})
	if err != nil {
		b.Fatal(err)
	}
	mix := []ledger.EventFilter{
		{},
		{Portal: "portal17"},
		{EventType: "ONTASKADD"},
		{Status: ledger.StatusDead},
		{Status: ledger.StatusError, Consumer: "tasks"},
		{EntityID: "4242"},
		{Source: "reconcile"},
		{From: now.Add(-72 * time.Hour), To: now.Add(-71 * time.Hour)},
		{Portal: "portal3", EventType: "ONCRMDEALADD", From: now.Add(-5 * 24 * time.Hour), To: now.Add(-4 * 24 * time.Hour)},
		{Cursor: first.NextCursor},
		{Portal: "portal9", Status: ledger.StatusDone},
		{Status: ledger.StatusReceived, Limit: 100},
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		f := mix[i%len(mix)]
		i++
		t0 := time.Now()
		if _, err := s.SearchEvents(ctx, f); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
}
