package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/jackc/pgx/v5"
)

// destConfig is one run of the destinations benchmark.
type destConfig struct {
	rate           int           // events offered per second in the latency phase
	duration       time.Duration // of the latency phase
	burst          int           // events pushed as fast as the ingress accepts
	conns          int           // connections pushing the burst
	concurrency    int           // the destination's requests in flight
	portals        int
	dealsPerPortal int
	http2          bool // the receiver speaks HTTP/2 as well
}

// benchDest runs every service binary, the destinations service included,
// with one destination that receives every ONCRMDEALUPDATE at a local TLS
// receiver in this process. The receiver verifies each request's Standard
// Webhooks signature and records when each webhook-id first arrived.
//
// Latency phase: a steady rate; accepted (the envelope's received_at, in the
// body) → arrival at the receiver, beside accepted → ledger done for
// deal-sync and for the destination's consumer, for the same events.
// Throughput phase: a burst pushed as fast as the ingress accepts; how many
// deliveries per second reach the receiver.
func benchDest(ctx context.Context, out io.Writer, cfg destConfig) error {
	dir, err := os.MkdirTemp("", "b24hub-bench-dest-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	key := randomBytes(32)
	rcv := &receiver{key: key, seen: map[string]bool{}, arrived: map[string]arrival{}}
	srv := httptest.NewUnstartedServer(rcv)
	srv.EnableHTTP2 = cfg.http2
	srv.StartTLS()
	defer srv.Close()
	certFile := filepath.Join(dir, "receiver.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		return err
	}
	secretFile := filepath.Join(dir, "bench.secret")
	if err := os.WriteFile(secretFile, []byte("whsec_"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	destFile := filepath.Join(dir, "destinations.yaml")
	yaml := fmt.Sprintf(`destinations:
  - name: bench
    url: %s/hook
    receives:
      events: [ONCRMDEALUPDATE]
    secret_files: [%s]
    rate: 100000
    concurrency: %d
    timeout: 10s
`, srv.URL, secretFile, cfg.concurrency)
	if err := os.WriteFile(destFile, []byte(yaml), 0o600); err != nil {
		return err
	}

	// Without the subscriptions service: it is not on a pushed event's way
	// to a destination, and its first reconciliation of every portal
	// published an ONCRMDEALUPDATE per seeded deal (20,000) that the whole
	// stack, the destination included, worked through before the run could
	// measure anything.
	c, err := startCluster(ctx, out, clusterConfig{portals: cfg.portals, dealsPerPortal: cfg.dealsPerPortal, destinations: true,
		withoutSubscriptions: true,
		env: []string{
			"B24HUB_DESTINATIONS_FILE=" + destFile,
			// The receiver is on loopback: an explicit exception, as in
			// development; production refuses it.
			"B24HUB_DESTINATIONS_ALLOW_NETS=127.0.0.0/8",
			// The services trust the receiver's self-signed certificate
			// (Go reads SSL_CERT_FILE for the system roots).
			"SSL_CERT_FILE=" + certFile,
		}})
	if err != nil {
		return err
	}
	defer c.close()
	proto := "HTTP/1.1"
	if cfg.http2 {
		proto = "HTTP/2 or HTTP/1.1"
	}
	fmt.Fprintf(out, "cluster up: %d services as processes, embedded JetStream (file store), PostgreSQL database %s, %d fake portals × %d deals\n",
		len(c.procs), c.dbName, cfg.portals, cfg.dealsPerPortal)
	fmt.Fprintf(out, "destination bench: every ONCRMDEALUPDATE to %s (TLS, %s, signatures verified), concurrency %d, no rate limit\n",
		srv.URL, proto, cfg.concurrency)
	// The destination's durable consumer exists once the service has read
	// its file.
	for deadline := time.Now().Add(time.Minute); ; {
		if _, err := c.js.Consumer(ctx, eventbus.StreamEvents, "dest-bench"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no consumer dest-bench after 1 min; destinations log:\n%s", tailFile(c.procs["destinations"].log, 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := c.waitIdle(ctx, 5*time.Minute); err != nil {
		return err
	}
	hc := newClient(max(256, cfg.conns))
	defer hc.CloseIdleConnections()
	var seq atomic.Int64
	push := func(i int, update bool) (string, bool) {
		p := c.portals[i%len(c.portals)]
		deal := (i/len(c.portals))%p.deals + 1
		if update {
			p.fake.UpdateDeal(int64(deal), map[string]string{"OPPORTUNITY": strconv.Itoa(100000 + i)}, false)
		}
		status, id := c.post(hc, p, deal, seq.Add(1))
		return id, status == http.StatusOK && id != ""
	}

	// (b) Latency at a steady rate.
	total := int(cfg.duration.Seconds() * float64(cfg.rate))
	interval := time.Second / time.Duration(cfg.rate)
	var (
		mu   sync.Mutex
		ids  []string
		errs int
		wg   sync.WaitGroup
	)
	fmt.Fprintf(out, "\nlatency phase: offering %d events/s for %s across %d portals (each after a change of its deal)\n", cfg.rate, cfg.duration, cfg.portals)
	start := time.Now()
	for i := range total {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			id, ok := push(i, true)
			mu.Lock()
			defer mu.Unlock()
			if !ok {
				errs++
				return
			}
			ids = append(ids, id)
		})
	}
	wg.Wait()
	loadEnd := time.Now()
	fmt.Fprintf(out, "load done: %d accepted, %d errors in %s\n", len(ids), errs, loadEnd.Sub(start).Round(time.Millisecond))
	if err := rcv.waitFor(ctx, ids, 5*time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(out, "receiver has every event %s after the load ended\n", time.Since(loadEnd).Round(100*time.Millisecond))
	if len(ids) == 0 {
		return fmt.Errorf("the ingress accepted no event")
	}
	lat := rcv.latencies(ids)
	fmt.Fprintf(out, "accepted → delivered to the receiver (%d events): p50 %s, p99 %s, max %s\n",
		len(lat), pct(lat, 50), pct(lat, 99), lat[len(lat)-1].Round(10*time.Microsecond))

	db, err := pgx.Connect(ctx, c.dbURL)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	for _, consumer := range []string{"dest-bench", "deal-sync"} {
		deadline := time.Now().Add(3 * time.Minute)
		var final int
		for {
			err := db.QueryRow(ctx, `SELECT count(*) FROM monitor.deliveries WHERE consumer = $2 AND event_id = ANY($1) AND status IN ('done', 'skipped')`, ids, consumer).Scan(&final)
			if err == nil && final == len(ids) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		var n int
		var p50, p99, pmax float64
		if err := db.QueryRow(ctx, `SELECT count(*),
				coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.updated_at - e.received_at)), 0),
				coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.updated_at - e.received_at)), 0),
				coalesce(max(extract(epoch FROM d.updated_at - e.received_at)), 0)
			FROM monitor.webhook_events e JOIN monitor.deliveries d ON d.event_id = e.id AND d.consumer = $2
			WHERE e.id = ANY($1) AND d.status IN ('done', 'skipped')`, ids, consumer).Scan(&n, &p50, &p99, &pmax); err != nil {
			return err
		}
		fmt.Fprintf(out, "accepted → ledger says %s done (%d of %d events): p50 %s, p99 %s, max %s\n",
			consumer, n, len(ids), secs(p50), secs(p99), secs(pmax))
	}

	// (a) Throughput: a burst as fast as the ingress accepts.
	if err := c.waitIdle(ctx, 5*time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nthroughput phase: %d events pushed over %d connections as fast as the ingress accepts\n", cfg.burst, cfg.conns)
	var next atomic.Int64
	burstIDs := make([]string, cfg.burst)
	var burstErrs atomic.Int64
	base := total
	start = time.Now()
	for range cfg.conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.burst || ctx.Err() != nil {
					return
				}
				id, ok := push(base+i, false)
				if !ok {
					burstErrs.Add(1)
					continue
				}
				burstIDs[i] = id
			}
		})
	}
	wg.Wait()
	accepted := time.Since(start)
	burstIDs = slices.DeleteFunc(burstIDs, func(s string) bool { return s == "" })
	fmt.Fprintf(out, "ingress accepted %d (%d errors) in %s: %.0f/s\n", len(burstIDs), burstErrs.Load(), accepted.Round(time.Millisecond),
		float64(len(burstIDs))/accepted.Seconds())
	if err := rcv.waitFor(ctx, burstIDs, 10*time.Minute); err != nil {
		return err
	}
	first, last := rcv.span(burstIDs)
	fmt.Fprintf(out, "receiver: %d deliveries in %s from the first push: %.0f deliveries/s (first to last delivery: %.0f/s)\n",
		len(burstIDs), last.Sub(start).Round(time.Millisecond), float64(len(burstIDs))/last.Sub(start).Seconds(),
		float64(len(burstIDs)-1)/last.Sub(first).Seconds())
	st := rcv.stats()
	fmt.Fprintf(out, "receiver totals: %d requests, %d distinct webhook-ids, %d repeated ids, %d bad signatures\n",
		st.requests, st.distinct, st.repeats, st.bad)
	if st.bad > 0 {
		return fmt.Errorf("%d requests failed signature verification", st.bad)
	}
	return nil
}

// receiver verifies Standard Webhooks signatures (the reference algorithm:
// HMAC-SHA256 over "id.timestamp.body", base64, "v1," prefixed, any of the
// space-separated signatures) and records each event's first arrival.
type receiver struct {
	key                    []byte
	mu                     sync.Mutex
	seen                   map[string]bool    // webhook-id
	arrived                map[string]arrival // event id (the envelope's message_id)
	requests, repeats, bad int
}

type arrival struct {
	at, accepted time.Time
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	id, ts, sigs := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	ok := err == nil && id != "" && r.verify(id, ts, sigs, body)
	var env struct {
		Data struct {
			MessageID  string    `json:"message_id"`
			ReceivedAt time.Time `json:"received_at"`
		} `json:"data"`
	}
	if ok && json.Unmarshal(body, &env) != nil {
		ok = false
	}
	r.mu.Lock()
	r.requests++
	switch {
	case !ok:
		r.bad++
	case r.seen[id]:
		r.repeats++
	default:
		r.seen[id] = true
		r.arrived[env.Data.MessageID] = arrival{at: now, accepted: env.Data.ReceivedAt}
	}
	r.mu.Unlock()
	if !ok {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) verify(id, ts, sigs string, body []byte) bool {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// waitFor waits until every event of ids has arrived.
func (r *receiver) waitFor(ctx context.Context, ids []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		r.mu.Lock()
		for _, id := range ids {
			if _, ok := r.arrived[id]; !ok {
				missing++
			}
		}
		r.mu.Unlock()
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s, %d of %d events have not arrived at the receiver", timeout, missing, len(ids))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// latencies are accepted → arrival of ids, sorted.
func (r *receiver) latencies(ids []string) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		a := r.arrived[id]
		out = append(out, a.at.Sub(a.accepted))
	}
	slices.Sort(out)
	return out
}

// span is the first and the last arrival of ids.
func (r *receiver) span(ids []string) (first, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, id := range ids {
		a := r.arrived[id].at
		if i == 0 || a.Before(first) {
			first = a
		}
		if a.After(last) {
			last = a
		}
	}
	return first, last
}

type receiverStats struct{ requests, distinct, repeats, bad int }

func (r *receiver) stats() receiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return receiverStats{requests: r.requests, distinct: len(r.seen), repeats: r.repeats, bad: r.bad}
}
