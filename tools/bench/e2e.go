package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// e2eConfig is one end-to-end run.
type e2eConfig struct {
	rate           int           // events offered per second
	duration       time.Duration // of the measured load
	warmup         time.Duration // load before the measurement starts
	portals        int
	dealsPerPortal int
	env            []string // extra KEY=VALUE for every service
	bins           string   // prebuilt service binaries (see clusterConfig.bins)
	dealSync       string   // deal-sync binary replacing the one in bins
	brief          bool     // skip the slice and memory tables
	profiles       string   // directory for every service's CPU profile
}

// e2eResult is what a paired run compares.
type e2eResult struct {
	events      int // offered, warm-up included
	p50, p99    float64
	first, last float64 // p99 of the first and the last 10 s of the measured load
	drained     time.Duration
	cpu         map[string]time.Duration // per event offered
}

// benchE2E runs every service binary as its own process and offers a steady
// rate of real ONCRMDEALUPDATE pushes, each after a real change of its deal
// on a fake portal, spread over several portals (one portal's 2 req/s limit
// lets deal-sync fetch at most 100 deals/s, so 1,000 events/s is a
// multi-tenant load). It reports the ingress latency, the latency from
// acceptance (the envelope's received_at) to the ledger saying deal-sync is
// done with the event (deliveries.updated_at, the monitor's commit), and
// each service's resident memory before, during and after the load.
func benchE2E(ctx context.Context, out io.Writer, cfg e2eConfig) (res e2eResult, err error) {
	c, err := startCluster(ctx, out, clusterConfig{portals: cfg.portals, dealsPerPortal: cfg.dealsPerPortal, env: cfg.env,
		bins: cfg.bins, dealSync: cfg.dealSync, profiles: cfg.profiles})
	if err != nil {
		return res, err
	}
	defer c.close()
	fmt.Fprintf(out, "cluster up: %d services as processes, embedded JetStream (file store), PostgreSQL database %s, %d fake portals × %d deals\n",
		len(c.procs), c.dbName, cfg.portals, cfg.dealsPerPortal)
	if err := c.waitIdle(ctx, 5*time.Minute); err != nil {
		return res, err
	}
	idle := c.sampleMemory()
	pgConn, err := pgx.Connect(ctx, c.dbURL)
	if err != nil {
		return res, err
	}
	defer pgConn.Close(context.Background())
	owners := map[string]int{}
	for name, p := range c.procs {
		owners[name] = p.cmd.Process.Pid
	}
	pg, err := watchPostgres(ctx, pgConn, c.dbName, owners)
	if err != nil {
		return res, err
	}
	pgStopped := false
	defer func() {
		if !pgStopped {
			pg.stop()
		}
	}()
	if cfg.profiles != "" {
		stop, err := profileSelf(filepath.Join(cfg.profiles, "bench.prof"))
		if err != nil {
			return res, err
		}
		defer stop()
	}
	cpu0 := c.sampleCPU()
	mem := newMemWatch(c)
	mem.start()

	// Open-loop load: event i goes to portal i%P about deal (i/P)%D+1, after
	// that deal changed on the portal.
	var seq atomic.Int64
	hc := newClient(256)
	defer hc.CloseIdleConnections()
	total := int((cfg.warmup + cfg.duration).Seconds() * float64(cfg.rate))
	measureFrom := int(cfg.warmup.Seconds() * float64(cfg.rate))
	interval := time.Second / time.Duration(cfg.rate)
	var (
		mu      sync.Mutex
		ids     []string
		lats    []time.Duration
		errs    int
		statusN = map[int]int{}
	)
	var wg sync.WaitGroup
	fmt.Fprintf(out, "offering %d events/s for %s (+%s warm-up) across %d portals\n", cfg.rate, cfg.duration, cfg.warmup, cfg.portals)
	start := time.Now()
	// The generator's goroutines (and the HTTP client's, started from
	// them) carry the label part=load in the bench process's profile.
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("part", "load")))
	for i := range total {
		if ctx.Err() != nil {
			break
		}
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		p := c.portals[i%len(c.portals)]
		deal := (i/len(c.portals))%p.deals + 1
		wg.Go(func() {
			p.fake.UpdateDeal(int64(deal), map[string]string{"OPPORTUNITY": strconv.Itoa(100000 + i)}, false)
			t0 := time.Now()
			status, id := c.post(hc, p, deal, seq.Add(1))
			lat := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			statusN[status]++
			if status != http.StatusOK || id == "" {
				errs++
				return
			}
			if i >= measureFrom {
				ids = append(ids, id)
				lats = append(lats, lat)
			}
		})
	}
	pprof.SetGoroutineLabels(ctx)
	wg.Wait()
	loadEnd := time.Now()
	offered := float64(total) / loadEnd.Sub(start).Seconds()
	fmt.Fprintf(out, "load done: %d requests in %s (%.0f/s offered), answers %v\n", total, loadEnd.Sub(start).Round(time.Millisecond), offered, statusN)

	// Wait for the ledger to say every measured event is done.
	db, err := pgx.Connect(ctx, c.dbURL)
	if err != nil {
		return res, err
	}
	defer db.Close(context.Background())
	pg.skip(db.PgConn().PID())
	deadline := time.Now().Add(10 * time.Minute)
	for {
		// The cheap count first (every deal-sync delivery settled, warm-up
		// included); the exact check of the measured ids only once that
		// says they may all be there. The harness's queries run on the
		// run's PostgreSQL and are not counted in its CPU (pgWatch skips
		// the harness's own backends), but they take the machine's.
		var settled, final int
		err := db.QueryRow(ctx, `SELECT count(*) FROM monitor.deliveries WHERE consumer = 'deal-sync' AND status IN ('done', 'skipped')`).Scan(&settled)
		if err == nil && settled >= total-errs {
			err = db.QueryRow(ctx, `SELECT count(*) FROM monitor.deliveries WHERE consumer = 'deal-sync' AND event_id = ANY($1) AND status IN ('done', 'skipped')`, ids).Scan(&final)
		}
		if err == nil && final == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("after 10 min only %d of %d events are done in the ledger", final, len(ids))
		}
		time.Sleep(time.Second)
	}
	drained := time.Since(loadEnd)
	cpu1 := c.sampleCPU()
	pgStopped = true
	pgBackends, pgShared, pgBy := pg.stop()
	mem.stop()
	after := c.sampleMemory()

	slices.Sort(lats)
	fmt.Fprintf(out, "\ningress (measured %d requests): p50 %s, p99 %s; %d errors\n", len(lats), pct(lats, 50), pct(lats, 99), errs)
	fmt.Fprintf(out, "ledger caught up %s after the load ended\n", drained.Round(100*time.Millisecond))

	// Accepted → done, from the ledger's own timestamps (one clock: this host).
	var n, done int
	var p50, p99, pmax float64
	if err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE d.status = 'done'),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.updated_at - e.received_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.updated_at - e.received_at)),
			max(extract(epoch FROM d.updated_at - e.received_at))
		FROM monitor.webhook_events e JOIN monitor.deliveries d ON d.event_id = e.id AND d.consumer = 'deal-sync'
		WHERE e.id = ANY($1)`, ids).Scan(&n, &done, &p50, &p99, &pmax); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "accepted → ledger says deal-sync done (%d events, %d done, %d skipped as already covered): p50 %s, p99 %s, max %s\n",
		n, done, n-done, secs(p50), secs(p99), secs(pmax))
	res = e2eResult{events: total, p50: p50, p99: p99, drained: drained, cpu: cpuPerEvent(cpu0, cpu1, total)}
	res.cpu[cpuPostgres], res.cpu[cpuPostgresShared] = pgBackends/time.Duration(total), pgShared/time.Duration(total)
	// Flat: the p99 of the last 10 s of the measured load against the first 10 s.
	if err := db.QueryRow(ctx, `WITH x AS (SELECT extract(epoch FROM e.received_at - $2::timestamptz) AS at,
				extract(epoch FROM d.updated_at - e.received_at) AS lat
			FROM monitor.webhook_events e JOIN monitor.deliveries d ON d.event_id = e.id AND d.consumer = 'deal-sync'
			WHERE e.id = ANY($1))
		SELECT coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY lat) FILTER (WHERE at < 10), 0),
			coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY lat) FILTER (WHERE at >= $3 - 10), 0) FROM x`,
		ids, start.Add(cfg.warmup), cfg.duration.Seconds()).Scan(&res.first, &res.last); err != nil {
		return res, err
	}
	flat := "flat"
	if res.last > 1.2*res.first {
		flat = "NOT flat"
	}
	// Redelivered: a handler saw the event more than once (a delivery lost
	// on its way and sent again after the ack wait, or a retry).
	var again, again50 int
	var againP50 float64
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE d.attempts > 1), count(*) FILTER (WHERE d.attempts > 1 AND d.updated_at - e.received_at > interval '25 seconds'),
			coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.updated_at - e.received_at)) FILTER (WHERE d.attempts > 1), 0)
		FROM monitor.webhook_events e JOIN monitor.deliveries d ON d.event_id = e.id AND d.consumer = 'deal-sync'
		WHERE e.id = ANY($1)`, ids).Scan(&again, &again50, &againP50); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "handled more than once: %d events (accepted → done p50 %s; %d of them after more than 25 s)\n", again, secs(againP50), again50)
	fmt.Fprintf(out, "p99 of the first 10 s %s, of the last 10 s %s: %s (last ≤ 1.2 × first)\n", secs(res.first), secs(res.last), flat)
	// The first hop alone: accepted → the raw event's ledger row committed.
	if err := db.QueryRow(ctx, `SELECT
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM recorded_at - received_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM recorded_at - received_at))
		FROM monitor.webhook_events WHERE id = ANY($1)`, ids).Scan(&p50, &p99); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "accepted → event row in the ledger (monitor-ledger's commit): p50 %s, p99 %s\n", secs(p50), secs(p99))
	// Where the time goes, per event: waiting before deal-sync's handler
	// started (batch window, queue, workers busy), the handler (limiter
	// wait, REST, SQL for the whole batch), and the outcome's way into the
	// ledger.
	var w50, w99, h50, h99, o50, o99 float64
	if err := db.QueryRow(ctx, `WITH x AS (
			SELECT extract(epoch FROM d.last_attempt_at - e.received_at) - d.duration_ms / 1000 AS wait,
				d.duration_ms / 1000 AS handler, extract(epoch FROM d.updated_at - d.last_attempt_at) AS fold
			FROM monitor.webhook_events e JOIN monitor.deliveries d ON d.event_id = e.id AND d.consumer = 'deal-sync'
			WHERE e.id = ANY($1))
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY wait), percentile_cont(0.99) WITHIN GROUP (ORDER BY wait),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY handler), percentile_cont(0.99) WITHIN GROUP (ORDER BY handler),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY fold), percentile_cont(0.99) WITHIN GROUP (ORDER BY fold) FROM x`, ids).
		Scan(&w50, &w99, &h50, &h99, &o50, &o99); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "  of which: before deal-sync's handler p50 %s / p99 %s; handler (its batch) p50 %s / p99 %s; outcome → ledger p50 %s / p99 %s\n",
		secs(w50), secs(w99), secs(h50), secs(h99), secs(o50), secs(o99))
	// The same per five-second slice of the load: a rising line means the
	// stack did not keep up with the rate.
	rows, err := db.Query(ctx, `SELECT floor(extract(epoch FROM e.received_at - $2::timestamptz) / 5)::int AS slice, count(*),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.updated_at - e.received_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.updated_at - e.received_at))
		FROM monitor.webhook_events e JOIN monitor.deliveries d ON d.event_id = e.id AND d.consumer = 'deal-sync'
		WHERE e.id = ANY($1) GROUP BY 1 ORDER BY 1`, ids, start.Add(cfg.warmup))
	if err != nil {
		return res, err
	}
	printCPU(out, res.cpu, total, cfg.rate)
	fmt.Fprintf(out, "\nof the postgres backends, by the service connected to them:")
	for _, name := range slices.Sorted(maps.Keys(pgBy)) {
		fmt.Fprintf(out, " %s %s;", name, us(pgBy[name]/time.Duration(total)))
	}
	fmt.Fprintln(out)
	if cfg.brief {
		return res, nil
	}
	fmt.Fprintf(out, "\n| load second | events | p50 | p99 |\n|---|---|---|---|\n")
	for rows.Next() {
		var slice, cnt int
		var a, b float64
		if err := rows.Scan(&slice, &cnt, &a, &b); err != nil {
			return res, err
		}
		fmt.Fprintf(out, "| %d–%d | %d | %s | %s |\n", slice*5, slice*5+5, cnt, secs(a), secs(b))
	}
	rows.Close()

	fmt.Fprintf(out, "\nresident memory per service process (MiB): before the load (idle, caught up), highest sampled during load and drain (every 500 ms), VmHWM at the end, and after the drain\n\n")
	fmt.Fprintf(out, "| service | idle | peak under load | VmHWM | after |\n|---|---|---|---|---|\n")
	names := make([]string, 0, len(c.procs))
	for s := range c.procs {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", s, mib(idle[s].rss), mib(mem.peak(s)), mib(after[s].hwm), mib(after[s].rss))
	}
	return res, nil
}

func (c *cluster) sampleMemory() map[string]memory {
	m := map[string]memory{}
	for s, p := range c.procs {
		if v, err := p.memory(); err == nil {
			m[s] = v
		}
	}
	return m
}

// memWatch samples every process's VmRSS until stopped.
type memWatch struct {
	c    *cluster
	mu   sync.Mutex
	max  map[string]int64
	quit chan struct{}
	done chan struct{}
}

func newMemWatch(c *cluster) *memWatch {
	return &memWatch{c: c, max: map[string]int64{}, quit: make(chan struct{}), done: make(chan struct{})}
}

func (w *memWatch) start() {
	go func() {
		defer close(w.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			for s, m := range w.c.sampleMemory() {
				w.mu.Lock()
				w.max[s] = max(w.max[s], m.rss)
				w.mu.Unlock()
			}
			select {
			case <-w.quit:
				return
			case <-t.C:
			}
		}
	}()
}

func (w *memWatch) stop() { close(w.quit); <-w.done }

func (w *memWatch) peak(s string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max[s]
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)].Round(10 * time.Microsecond)
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

func mib(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)/1024) }
