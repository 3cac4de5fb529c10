package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// soakConfig is one soak run.
type soakConfig struct {
	rate           int           // events offered per second
	duration       time.Duration // of the load
	faultEvery     time.Duration // one fault per interval, the kinds in turn
	sampleEvery    time.Duration // resident memory and goroutines
	portals        int
	dealsPerPortal int
}

// soakFaults are the faults a soak injects in turn.
var soakFaults = []string{"broker restart", "kill -9 deal-sync", "PostgreSQL connections dropped", "kill -9 monitor", "kill -9 telephony"}

// soakSample is one sample of every service process.
type soakSample struct {
	at         time.Duration // since the load started
	fault      string        // injected since the previous sample
	accepted   int64
	rss        map[string]int64 // KiB
	goroutines map[string]int
}

// benchSoak runs every service as its own process under a steady rate of
// real pushes for cfg.duration, with a fault every cfg.faultEvery (broker
// restart, a consumer process killed and started again, every PostgreSQL
// connection of the stack terminated), samples each process's resident
// memory and goroutines, and at the end checks the ledger: every accepted
// event recorded and done (or skipped) by deal-sync, none dead-lettered.
// It fails when the ledger is not complete.
func benchSoak(ctx context.Context, out io.Writer, cfg soakConfig) error {
	c, err := startCluster(ctx, out, clusterConfig{portals: cfg.portals, dealsPerPortal: cfg.dealsPerPortal})
	if err != nil {
		return err
	}
	defer c.close()
	fmt.Fprintf(out, "cluster up: %d services as processes, embedded JetStream (file store), PostgreSQL database %s, %d fake portals × %d deals\n",
		len(c.procs), c.dbName, cfg.portals, cfg.dealsPerPortal)
	if err := c.waitIdle(ctx, 5*time.Minute); err != nil {
		return err
	}

	var (
		seq      atomic.Int64
		mu       sync.Mutex
		ids      []string
		statusN  = map[int]int{}
		accepted atomic.Int64
	)
	hc := newClient(256)
	defer hc.CloseIdleConnections()
	loadCtx, stopLoad := context.WithTimeout(ctx, cfg.duration)
	defer stopLoad()
	start := time.Now()
	var wg sync.WaitGroup
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		interval := time.Second / time.Duration(cfg.rate)
		for i := 0; loadCtx.Err() == nil; i++ {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				select {
				case <-loadCtx.Done():
					return
				case <-time.After(wait):
				}
			}
			p := c.portals[i%len(c.portals)]
			deal := (i/len(c.portals))%p.deals + 1
			wg.Go(func() {
				p.fake.UpdateDeal(int64(deal), map[string]string{"OPPORTUNITY": strconv.Itoa(100000 + i)}, false)
				status, id := c.post(hc, p, deal, seq.Add(1))
				mu.Lock()
				defer mu.Unlock()
				statusN[status]++
				if status == http.StatusOK && id != "" {
					ids = append(ids, id)
					accepted.Add(1)
				}
			})
		}
	}()
	fmt.Fprintf(out, "offering %d events/s for %s; a fault every %s (%s, in turn); sampling every %s\n",
		cfg.rate, cfg.duration, cfg.faultEvery, strings.Join(soakFaults, ", "), cfg.sampleEvery)

	var samples []soakSample
	sample := func(fault string) {
		s := soakSample{at: time.Since(start), fault: fault, accepted: accepted.Load(), rss: map[string]int64{}, goroutines: map[string]int{}}
		for name, p := range c.procs {
			if m, err := p.memory(); err == nil {
				s.rss[name] = m.rss
			}
			s.goroutines[name] = goroutines(p.admin)
		}
		samples = append(samples, s)
		fmt.Fprintf(out, "  %6s  accepted %7d  %s\n", s.at.Round(time.Second), s.accepted, fault)
	}
	sample("")
	nextSample := start.Add(cfg.sampleEvery)
	nextFault := start.Add(cfg.faultEvery)
	faults, pending := 0, ""
	for {
		wake := nextSample
		if nextFault.Before(wake) {
			wake = nextFault
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-loadDone:
		case <-time.After(time.Until(wake)):
		}
		if loadCtx.Err() != nil {
			break
		}
		if !time.Now().Before(nextFault) {
			kind := soakFaults[faults%len(soakFaults)]
			faults++
			t0 := time.Now()
			if err := c.inject(ctx, kind); err != nil {
				return fmt.Errorf("fault %q: %w", kind, err)
			}
			f := fmt.Sprintf("%s at %s (recovered in %s)", kind, t0.Sub(start).Round(time.Second), time.Since(t0).Round(100*time.Millisecond))
			fmt.Fprintf(out, "  fault: %s\n", f)
			pending = strings.TrimPrefix(pending+"; "+kind, "; ")
			nextFault = nextFault.Add(cfg.faultEvery)
		}
		if !time.Now().Before(nextSample) {
			sample(pending)
			pending = ""
			nextSample = nextSample.Add(cfg.sampleEvery)
		}
	}
	<-loadDone
	wg.Wait()
	loadEnd := time.Now()
	sample(pending)
	mu.Lock()
	fmt.Fprintf(out, "load done: %d requests in %s (%.0f/s), answers %v; %d faults\n", seq.Load(), loadEnd.Sub(start).Round(time.Second),
		float64(seq.Load())/loadEnd.Sub(start).Seconds(), statusN, faults)
	mu.Unlock()

	// The ledger must come complete: every accepted event recorded and
	// finished by deal-sync, nothing dead-lettered.
	db, err := pgx.Connect(ctx, c.dbURL)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	deadline := time.Now().Add(15 * time.Minute)
	var final, recorded int
	for {
		err := db.QueryRow(ctx, `SELECT count(*) FROM monitor.deliveries WHERE consumer = 'deal-sync' AND event_id = ANY($1) AND status IN ('done', 'skipped')`, ids).Scan(&final)
		if err == nil && final == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	drained := time.Since(loadEnd)
	sample("(drained)")
	printSoak(out, c, samples)
	var dead int
	// A failed count must fail the run with its reason: a swallowed error
	// once reported "0 recorded" for a ledger that was complete. The ids go
	// in slices: one array of 360,000 ids against the ledger's daily
	// partitions ran PostgreSQL out of memory (SQLSTATE 54000).
	for lo := 0; lo < len(ids); lo += soakCountSlice {
		part := ids[lo:min(lo+soakCountSlice, len(ids))]
		var r, d int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM monitor.webhook_events WHERE id = ANY($1)`, part).Scan(&r); err != nil {
			return fmt.Errorf("count the ledger's event rows: %w", err)
		}
		if err := db.QueryRow(ctx, `SELECT count(*) FROM monitor.deliveries WHERE event_id = ANY($1) AND status = 'dead'`, part).Scan(&d); err != nil {
			return fmt.Errorf("count dead letters: %w", err)
		}
		recorded += r
		dead += d
	}
	fmt.Fprintf(out, "\nledger: %d accepted, %d recorded, %d done or skipped by deal-sync, %d dead-lettered; caught up %s after the load ended\n",
		len(ids), recorded, final, dead, drained.Round(time.Second))
	if recorded != len(ids) || final != len(ids) || dead != 0 {
		var missing []string
		rows, err := db.Query(ctx, `SELECT x FROM unnest($1::text[]) x WHERE NOT EXISTS (SELECT 1 FROM monitor.deliveries d
			WHERE d.event_id = x AND d.consumer = 'deal-sync' AND d.status IN ('done', 'skipped')) LIMIT 10`, ids)
		if err == nil {
			for rows.Next() {
				var id string
				_ = rows.Scan(&id)
				missing = append(missing, id)
			}
			rows.Close()
		}
		return fmt.Errorf("ledger incomplete: %d accepted, %d recorded, %d done, %d dead; first unfinished %v; logs in %s",
			len(ids), recorded, final, dead, missing, c.dir)
	}
	fmt.Fprintln(out, "ledger complete")
	return nil
}

// inject causes one fault and waits until the stack has recovered from it
// (the broker answering, the process restarted and ready).
// soakCountSlice is how many accepted ids one ledger count query takes.
const soakCountSlice = 20_000

func (c *cluster) inject(ctx context.Context, kind string) error {
	switch {
	case kind == "broker restart":
		return c.restartBroker()
	case strings.HasPrefix(kind, "kill -9 "):
		return c.killAndRestart(ctx, strings.TrimPrefix(kind, "kill -9 "))
	case kind == "PostgreSQL connections dropped":
		conn, err := pgx.Connect(ctx, c.adminURL)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, c.dbName)
		return err
	}
	return fmt.Errorf("unknown fault %q", kind)
}

// restartBroker stops the broker hard and starts it again on the same port
// with the same store, as a crashed and restarted JetStream node.
func (c *cluster) restartBroker() error {
	addr := c.broker.ClientURL()
	p, err := strconv.Atoi(addr[strings.LastIndex(addr, ":")+1:])
	if err != nil {
		return err
	}
	c.broker.Shutdown()
	c.broker.WaitForShutdown()
	ns, err := startBrokerIn(c.brokerDir(), p)
	if err != nil {
		return err
	}
	c.broker = ns
	return nil
}

// killAndRestart sends SIGKILL to a service process, waits for it to exit,
// starts the binary again with the same environment and waits until it is
// ready.
func (c *cluster) killAndRestart(ctx context.Context, name string) error {
	p, ok := c.procs[name]
	if !ok {
		return fmt.Errorf("no process %s", name)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	logf, err := os.OpenFile(p.log, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.cmd.Path)
	cmd.Env = p.cmd.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	deadline := time.Now().Add(90 * time.Second)
	for !ready(p.ready) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready again within 90s; log %s", name, p.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// goroutines reads go_goroutines from a service's admin /metrics; -1 when
// it cannot.
func goroutines(admin string) int {
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(n)
			}
		}
	}
	return -1
}

// printSoak prints the samples as a table: per service, resident memory in
// MiB / goroutines.
func printSoak(out io.Writer, c *cluster, samples []soakSample) {
	names := make([]string, 0, len(c.procs))
	for s := range c.procs {
		names = append(names, s)
	}
	sort.Strings(names)
	fmt.Fprintf(out, "\nresident memory (MiB) / goroutines per service process; a fault marks the first sample after it (a killed process restarts from nothing)\n\n")
	fmt.Fprintf(out, "| minute | accepted | %s | faults since the previous sample |\n|---|---|", strings.Join(names, " | "))
	fmt.Fprint(out, strings.Repeat("---|", len(names)), "---|\n")
	for _, s := range samples {
		fmt.Fprintf(out, "| %.1f | %d |", s.at.Minutes(), s.accepted)
		for _, n := range names {
			fmt.Fprintf(out, " %s / %d |", mib(s.rss[n]), s.goroutines[n])
		}
		fmt.Fprintf(out, " %s |\n", s.fault)
	}
}
