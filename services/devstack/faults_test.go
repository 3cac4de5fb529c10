package main

import (
	"context"
	"fmt"
	"github.com/b24hub/b24hub/libs/natstest"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/telemetry"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Fault tests: each runs the whole stack under load, injects one fault for
// a bounded time and checks that nothing accepted is lost and nothing is
// done twice. The short variants run in `go tool task test`; B24HUB_CHAOS=1
// (`go tool task chaos`) selects longer outages and more load.

// TestBrokerKilledUnderLoad shuts the embedded JetStream server down while
// the ingress takes load, and starts it again on the same port with the
// same store. Every request answered 200 must be in the stream and in the
// ledger afterwards; requests during the outage must get 503 within the
// publish timeout (2 s, plus scheduling margin), never hang; the ingress
// must recover without help.
func TestBrokerKilledUnderLoad(t *testing.T) {
	parallelShort(t)
	s := startStack(t, stackOptions{})
	rate := pick(100, 150)
	outage := pick(3*time.Second, 10*time.Second)
	cycles := pick(1, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := s.startLoad(ctx, rate, 24, 100_000, s.randomDealUpdate)
	type window struct{ down, up time.Time }
	var outages []window
	for range cycles {
		time.Sleep(pick(time.Second, 5*time.Second))
		port := s.ns.Addr().(*net.TCPAddr).Port
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		// The window is from "fully down" to "about to start": a request
		// made and answered inside it cannot have reached JetStream.
		w := window{down: time.Now()}
		time.Sleep(outage)
		w.up = time.Now()
		ns, err := startNATS(s.dir, port, s.ids.users(), s.log)
		if err != nil {
			t.Fatalf("restart broker: %v", err)
		}
		s.ns = ns
		if got := ns.Addr().(*net.TCPAddr).Port; got != port {
			t.Fatalf("broker restarted on port %d, want %d", got, port)
		}
		outages = append(outages, w)
	}
	time.Sleep(pick(3*time.Second, 8*time.Second))
	cancel()
	rs := l.wait()

	// Classify every answer.
	const maxUnavailable = 3 * time.Second // 2 s publish timeout + margin on a busy 2-core machine
	var ok, unavailable, during, afterRecovery, afterRecoveryOK int
	var slowest time.Duration
	lastUp := outages[len(outages)-1].up
	for _, r := range rs {
		switch {
		case r.err != nil:
			t.Errorf("request at %s: transport error %v (the ingress must stay up)", r.started.Format("15:04:05.000"), r.err)
		case r.status == http.StatusOK:
			ok++
		case r.status == http.StatusServiceUnavailable:
			unavailable++
			slowest = max(slowest, r.took)
			if r.took > maxUnavailable {
				t.Errorf("503 after %s, want within %s", r.took, maxUnavailable)
			}
		default:
			t.Errorf("unexpected status %d", r.status)
		}
		for _, w := range outages {
			if r.started.After(w.down) && r.started.Add(r.took).Before(w.up) {
				during++
				if r.status == http.StatusOK {
					t.Errorf("200 for a request made and answered while the broker was down")
				}
			}
		}
		// Recovery: everything sent 2 s after the last restart succeeds.
		if r.started.After(lastUp.Add(2 * time.Second)) {
			afterRecovery++
			if r.status == http.StatusOK {
				afterRecoveryOK++
			}
		}
	}
	t.Logf("%d requests: %d accepted, %d answered 503 (slowest %s), %d made and answered during %d outage(s) of %s; after recovery %d/%d accepted",
		len(rs), ok, unavailable, slowest.Round(time.Millisecond), during, len(outages), outage, afterRecoveryOK, afterRecovery)
	if during == 0 || unavailable == 0 {
		t.Errorf("no request was answered during the outage: the fault did not bite")
	}
	if afterRecovery == 0 || afterRecoveryOK != afterRecovery {
		t.Errorf("ingress did not recover by itself: %d of %d requests after recovery accepted", afterRecoveryOK, afterRecovery)
	}

	// Nothing accepted is lost: in the stream, then in the ledger, processed by deal-sync.
	ids := accepted(rs)
	inStream := s.streamMsgIDs(eventbus.StreamEvents)
	var missing []string
	for _, id := range ids {
		if inStream[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d accepted events are not in the stream, e.g. %v", len(missing), len(ids), missing[:min(3, len(missing))])
	}
	s.waitLedger(ids, pick(90*time.Second, 5*time.Minute))
	s.checkRunners()
}

// waitLedger waits until every id has a ledger row and a final deal-sync
// delivery (done or skipped).
func (s *testStack) waitLedger(ids []string, timeout time.Duration) {
	s.t.Helper()
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	var ev, done int
	deadline := time.Now().Add(timeout)
	for {
		ev, done = s.ledgerCounts(ids)
		if ev == len(ids) && done == len(ids) {
			s.t.Logf("ledger complete: %d events recorded, %d done or skipped by deal-sync", ev, done)
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("ledger after %s: %d of %d events recorded, %d done or skipped by deal-sync; dead letters: %v; not done: %v; deal-sync consumer: %s",
				timeout, ev, len(ids), done, s.deadLetters(), s.notDone(ids), s.consumerState(eventbus.StreamEvents, "deal-sync"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// notDone describes up to five of ids that deal-sync has not finished:
// the event's stream sequence and deal, and its deal-sync delivery if any.
func (s *testStack) notDone(ids []string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := s.db.Query(ctx, `SELECT e.id, e.stream_seq, e.entity_id,
			coalesce(d.status, 'no delivery'), coalesce(d.attempts, 0), coalesce(d.last_error, ''), coalesce(d.updated_at::text, '')
		FROM monitor.webhook_events e
		LEFT JOIN monitor.deliveries d ON d.event_id = e.id AND d.consumer = 'deal-sync'
		WHERE e.id = ANY($1) AND (d.status IS NULL OR d.status NOT IN ('done', 'skipped'))
		LIMIT 5`, ids)
	if err != nil {
		return []string{err.Error()}
	}
	defer rows.Close()
	var out, stuck []string
	for rows.Next() {
		var id, entity, status, lastErr, updated string
		var seq int64
		var attempts int
		if err := rows.Scan(&id, &seq, &entity, &status, &attempts, &lastErr, &updated); err != nil {
			return append(out, err.Error())
		}
		stuck = append(stuck, id)
		out = append(out, fmt.Sprintf("%s (seq %d, deal %s): %s after %d attempts at %s %q", id, seq, entity, status, attempts, updated, lastErr))
	}
	rows.Close()
	// What deal-sync reported, in the order the outcomes stream stored it:
	// tells "the outcome never arrived" from "the ledger kept the wrong one".
	history := s.outcomeHistory(stuck)
	for i, id := range stuck {
		out[i] += fmt.Sprintf("; deal-sync outcomes stored: %v", history[id])
	}
	return out
}

// outcomeHistory lists, per event id, deal-sync's outcomes in the outcomes
// stream: "attempt:status@stored time (stream seq)".
func (s *testStack) outcomeHistory(ids []string) map[string][]string {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string][]string{}
	s.eachStreamMsg(eventbus.StreamOutcomes, func(msgID string, md *jetstream.MsgMetadata) {
		// The message id is <event>:<consumer>:<attempt>:<status>.
		parts := strings.Split(msgID, ":")
		if len(parts) < 4 || parts[len(parts)-3] != "deal-sync" {
			return
		}
		ev := strings.Join(parts[:len(parts)-3], ":")
		if !want[ev] {
			return
		}
		desc := parts[len(parts)-2] + ":" + parts[len(parts)-1]
		if md != nil {
			desc += fmt.Sprintf("@%s (seq %d)", md.Timestamp.UTC().Format("15:04:05.000"), md.Sequence.Stream)
		}
		out[ev] = append(out[ev], desc)
	})
	return out
}

// consumerState is what the server says of a consumer: where its
// acknowledgements and deliveries are, and how many messages wait.
func (s *testStack) consumerState(stream, durable string) string {
	ci, err := s.consumerInfo(stream, durable)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("ack floor stream seq %d, delivered stream seq %d, %d waiting for an ack, %d redelivered, %d not yet delivered",
		ci.AckFloor.Stream, ci.Delivered.Stream, ci.NumAckPending, ci.NumRedelivered, ci.NumPending)
}

// deadLetters counts the dead-letter stream's messages by subject.
func (s *testStack) deadLetters() map[string]uint64 {
	return s.streamSubjects(eventbus.StreamDead, ">")
}

// stackEnv joins extra variables for startStack.
func stackEnv(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestConsumerKilledMidBatch runs deal-sync as its own "process" (own NATS
// connection, own PostgreSQL pool, both through proxies) over a backlog of
// 760 reconciliation events plus 200 pushes about edited deals, and kills
// it while it is mirroring: both links are cut at once, so transactions in
// flight roll back and nothing is acknowledged, as when the process dies.
// The stack's own deal-sync then takes over. Every deal must be mirrored in
// its final state with exactly one domain change, and every event must be
// done in the ledger: no lost event, no double effect.
func TestConsumerKilledMidBatch(t *testing.T) {
	parallelShort(t)
	// A short ack wait lets the next process get the killed one's messages
	// soon; a short drain ends the killed one's goroutines soon.
	s := startStack(t, stackOptions{without: []string{"deal-sync"},
		env: stackEnv("B24HUB_DEALSYNC_ACK_WAIT", "2s", "B24HUB_SHUTDOWN_TIMEOUT", "1s")})
	ctx := context.Background()
	began := time.Now()
	const edited = 200
	var ids []string
	for i := 1; i <= edited; i++ {
		s.fake.UpdateDeal(int64(i), map[string]string{"STAGE_ID": "WON", "TITLE": fmt.Sprint("Edited deal ", i)}, false)
		r := s.post(s.dealUpdate(i))
		if r.status != http.StatusOK {
			t.Fatalf("push %d: %d %v", i, r.status, r.err)
		}
		ids = append(ids, r.id)
	}

	// The doomed processes: each is killed once it mirrored a few more
	// batches while others are in flight (three in a row under chaos).
	for k := range pick(1, 3) {
		s.runAndKillDealSync(t, began, 120+k*200)
	}

	// The next process.
	t.Logf("%s: next deal-sync starts", time.Since(began).Round(time.Millisecond))
	s.start("deal-sync", s.running["deal-sync"].Run)
	all := s.streamMsgIDs(eventbus.StreamEvents)
	for _, id := range ids {
		if all[id] == 0 {
			t.Fatalf("accepted push %s is not in the stream", id)
		}
	}
	var every []string
	for id := range all {
		every = append(every, id)
	}
	s.waitLedger(every, pick(90*time.Second, 3*time.Minute))
	s.eventually("stack idle", 3*time.Minute, func() bool { return s.pending() == 0 })
	t.Logf("%s: caught up", time.Since(began).Round(time.Millisecond))

	// Exactly one effect per deal.
	var deals, won int
	if err := s.db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE stage_id = 'WON') FROM deal_sync.deals`).Scan(&deals, &won); err != nil {
		t.Fatal(err)
	}
	if deals != demoDeals || won != edited {
		t.Errorf("mirror: %d deals (%d WON), want %d (%d WON)", deals, won, demoDeals, edited)
	}
	s.eventually("outbox published", 30*time.Second, func() bool {
		var unpublished int
		_ = s.db.QueryRow(ctx, `SELECT count(*) FROM deal_sync.outbox WHERE published_at IS NULL`).Scan(&unpublished)
		return unpublished == 0
	})
	changes := s.streamSubjects(eventbus.StreamChanges, eventbus.ChangesPrefix+".deal.>")
	if len(changes) != demoDeals {
		t.Errorf("%d deals have domain changes, want %d", len(changes), demoDeals)
	}
	for subj, n := range changes {
		if n != 1 {
			t.Errorf("%s: %d domain changes, want exactly 1", subj, n)
		}
	}
	if dl := s.deadLetters(); len(dl) > 0 {
		t.Errorf("dead letters: %v", dl)
	}
	s.checkRunners()
}

// newDealSync builds a deal-sync like the stack's, on its own connections.
func (s *testStack) newDealSync(t *testing.T, nc *nats.Conn, pool *pgxpool.Pool) *dealsync.Service {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The clients as the stack (and cmd/deal-sync) builds them: the shared
	// limiter and token store on this process's own connection.
	app, err := bitrixport.AppFromEnv(s.getenv)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := bitrixport.SharedClients(context.Background(), js, s.reg, app)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := dealsync.ConfigFromEnv(s.getenv)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := dealsync.New(cfg, dealsync.Deps{NC: nc, Pool: pool, Logger: telemetry.NewLogger(s.logs, slog.LevelInfo, "doomed-deal-sync"),
		Portals: clients})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func (s *testStack) consumerInfo(stream, durable string) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.js.Consumer(ctx, stream, durable)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// hostPort is the host:port of a database URL.
func hostPort(t testing.TB, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.Host
}

// viaProxy is dsn with its host:port replaced by addr.
func viaProxy(t testing.TB, dsn, addr string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// runAndKillDealSync starts a deal-sync on its own links and kills it once
// at least killAt deals are mirrored.
func (s *testStack) runAndKillDealSync(t *testing.T, began time.Time, killAt int) {
	ctx := context.Background()
	t.Logf("%s: doomed deal-sync starts", time.Since(began).Round(time.Millisecond))
	natsProxy := natstest.NewProxy(t, s.ns.Addr().String())
	pgProxy := natstest.NewProxy(t, hostPort(t, s.dbURL))
	// As deal-sync's own identity, as its process would connect.
	doomedNC := s.connectAsVia("nats://"+natsProxy.Addr(), "deal-sync", nats.ReconnectWait(100*time.Millisecond))
	doomedPool, err := pgxpool.New(ctx, viaProxy(t, s.dbURL, pgProxy.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	doomed := s.newDealSync(t, doomedNC, doomedPool)
	dctx, dcancel := context.WithCancel(ctx)
	ddone := make(chan error, 1)
	go func() { ddone <- doomed.Run(dctx) }()

	var mirrored, ackPending int
	s.eventually("doomed deal-sync mirroring", 60*time.Second, func() bool {
		_ = s.db.QueryRow(ctx, `SELECT count(*) FROM deal_sync.deals`).Scan(&mirrored)
		return mirrored >= killAt
	})
	natsProxy.Cut()
	pgProxy.Cut()
	if ci, err := s.consumerInfo(eventbus.StreamEvents, "deal-sync"); err == nil {
		ackPending = ci.NumAckPending
	}
	_ = s.db.QueryRow(ctx, `SELECT count(*) FROM deal_sync.deals`).Scan(&mirrored)
	t.Logf("%s: killed with %d of %d deals mirrored and %d messages delivered but unacknowledged",
		time.Since(began).Round(time.Millisecond), mirrored, demoDeals, ackPending)
	if ackPending == 0 || mirrored >= demoDeals {
		t.Fatalf("the kill did not land mid-work (ack pending %d, mirrored %d)", ackPending, mirrored)
	}
	// A dead process does not drain: close what is left of it and go on.
	doomedNC.Close()
	dcancel()
	t.Cleanup(func() {
		select {
		case err := <-ddone:
			if err != nil {
				t.Logf("killed deal-sync ended: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Log("killed deal-sync goroutines still running after 30s")
		}
		doomedPool.Close()
	})
}

// TestPostgresOutageUnderLoad cuts the stack's link to PostgreSQL (a proxy
// between the pool and the server; the server itself is shared with other
// tests and keeps running) for 5 s (30 s under chaos) while events about
// changing deals keep arriving. The ingress keeps accepting (it does not
// use the database); the monitor and deal-sync pause, retry and catch up:
// afterwards every accepted event is in the ledger and done, every deal's
// mirror equals the portal's state, nothing was dead-lettered, and no
// service gave up.
func TestPostgresOutageUnderLoad(t *testing.T) {
	parallelShort(t)
	direct := pgtest.NewDatabase(t)
	proxy := natstest.NewProxy(t, hostPort(t, direct))
	s := startStack(t, stackOptions{databaseURL: viaProxy(t, direct, proxy.Addr()), assertDB: direct})
	outage := pick(5*time.Second, 30*time.Second)

	// Each event follows a real change, so deal-sync has mirror writes and
	// domain changes to make.
	var mu sync.Mutex
	touched := map[int64]bool{}
	send := func(i int) postResult {
		id := int64(1 + i%demoDeals)
		s.fake.UpdateDeal(id, map[string]string{"OPPORTUNITY": fmt.Sprint(100000 + i)}, false)
		mu.Lock()
		touched[id] = true
		mu.Unlock()
		return s.post(s.dealUpdate(int(id)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := s.startLoad(ctx, pick(50, 80), 8, 100_000, send)
	time.Sleep(time.Second)
	proxy.Cut()
	t.Logf("PostgreSQL cut for %s", outage)
	time.Sleep(outage)
	proxy.Restore()
	restored := time.Now()
	time.Sleep(2 * time.Second)
	cancel()
	rs := l.wait()
	for _, r := range rs {
		if r.status != http.StatusOK {
			t.Fatalf("ingress answered %d (%v) during a PostgreSQL outage; it must not need the database", r.status, r.err)
		}
	}
	ids := accepted(rs)
	t.Logf("%d events accepted", len(ids))
	s.waitLedger(ids, pick(2*time.Minute, 4*time.Minute))
	s.eventually("stack idle", 3*time.Minute, func() bool { return s.pending() == 0 })
	t.Logf("caught up %s after PostgreSQL came back (load stopped 2 s after)", time.Since(restored).Round(100*time.Millisecond))

	// Mirrors equal the portal.
	mirrored := mirroredOpportunities(t, s.db, keys(touched))
	for id := range touched {
		want, _ := s.fake.Deal(id)
		if got := mirrored[id]; !sameAmount(got, want["OPPORTUNITY"]) {
			t.Errorf("deal %d: mirror OPPORTUNITY %q, portal %q", id, got, want["OPPORTUNITY"])
		}
	}
	if dl := s.deadLetters(); len(dl) > 0 {
		t.Errorf("dead letters after a %s outage: %v", outage, dl)
	}
	logs := s.logs.String()
	// The monitor's ledger ingest runs on libs/consumer's commit mode, which
	// logs these while a batch cannot be committed and once it is.
	for _, want := range []string{"batch not committed, retrying", "batch committed after retries"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log has no %q: the outage did not reach the monitor?", want)
		}
	}
	s.checkRunners()
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// sameAmount compares money as numbers ("100001" and "100001.00").
func sameAmount(a, b string) bool {
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	return ea == nil && eb == nil && fa == fb
}

// TestPortalFaults makes the fake portal answer 30% of REST requests with
// QUERY_LIMIT_EXCEEDED, 5% with 500 and 5% with an HTML error page while
// deal-sync mirrors a batch of edited deals. Every event must be processed
// (done in the ledger, mirror equal to the portal, one change per edit, no
// dead letter) and the platform must never exceed the limit itself: the
// bucket rejected nothing and its highest level stayed within the burst.
// The demo portal is a webhook portal (no tokens); expiring OAuth tokens
// under the same faults are TestAppPortalTokensExpireUnderFaults (an
// app-installed portal through the stack) and, with four replicas of the
// client, libs/bitrix TestExpiringTokensRefreshOncePerExpiry.
func TestPortalFaults(t *testing.T) {
	parallelShort(t)
	s := startStack(t, stackOptions{})
	n, rounds := pick(300, demoDeals), pick(2, 6)
	s.fake.ResetStats()
	s.fake.SetFaults(fakeportal.Faults{ServerErrorRate: 0.05, HTMLRate: 0.05, HTMLStatus: http.StatusBadGateway})
	s.fake.SetQueryLimitRate(0.30)
	began := time.Now()
	// Each round edits every deal and pushes its event, then waits until
	// the round is processed, so every round costs real fetches.
	for round := 1; round <= rounds; round++ {
		stage := fmt.Sprint("R", round)
		if round == rounds {
			stage = "LOSE"
		}
		var ids []string
		for i := 1; i <= n; i++ {
			s.fake.UpdateDeal(int64(i), map[string]string{"STAGE_ID": stage}, false)
			r := s.post(s.dealUpdate(i))
			if r.status != http.StatusOK {
				t.Fatalf("push %d: %d %v", i, r.status, r.err)
			}
			ids = append(ids, r.id)
		}
		s.waitLedger(ids, pick(2*time.Minute, 5*time.Minute))
	}
	s.eventually("stack idle", 3*time.Minute, func() bool { return s.pending() == 0 })
	st := s.fake.Stats()
	t.Logf("%d events processed in %s: %d REST requests, %d injected QUERY_LIMIT_EXCEEDED, %d injected 500/HTML, %d bucket rejections, max bucket level %.1f of %d",
		n*rounds, time.Since(began).Round(100*time.Millisecond), st.Requests, s.fake.InjectedQueryLimits(), st.InjectedFaults, st.QueryLimitExceeded, st.MaxLevel, 50)
	// A short run makes about 20 requests: QUERY_LIMIT_EXCEEDED (30%) is
	// certain to bite, a 500 or HTML page (10%) is not; the long run makes
	// hundreds.
	if s.fake.InjectedQueryLimits() == 0 || (chaos() && st.InjectedFaults == 0) {
		t.Errorf("faults did not bite: %d QUERY_LIMIT_EXCEEDED, %d 500/HTML injected", s.fake.InjectedQueryLimits(), st.InjectedFaults)
	}
	if st.QueryLimitExceeded != 0 {
		t.Errorf("the platform exceeded the portal's limit: %d requests rejected by the bucket", st.QueryLimitExceeded)
	}
	if st.MaxLevel > 50 {
		t.Errorf("bucket level reached %.1f, burst is 50", st.MaxLevel)
	}
	var lost int
	if err := s.db.QueryRow(context.Background(), `SELECT count(*) FROM deal_sync.deals WHERE deal_id <= $1 AND stage_id <> 'LOSE'`, n).Scan(&lost); err != nil {
		t.Fatal(err)
	}
	if lost != 0 {
		t.Errorf("%d edited deals not mirrored in their new state", lost)
	}
	for subj, c := range s.streamSubjects(eventbus.StreamChanges, eventbus.ChangesPrefix+".deal.>") {
		id, _ := strconv.Atoi(subj[strings.LastIndexByte(subj, '.')+1:])
		want := uint64(1) // the first mirror
		if id <= n {
			want += uint64(rounds) // and one per edit
		}
		if c != want {
			t.Errorf("%s: %d domain changes, want %d", subj, c, want)
		}
	}
	if dl := s.deadLetters(); len(dl) > 0 {
		t.Errorf("dead letters: %v", dl)
	}
	s.checkRunners()
}
