package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/libs/testwait"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The stack-level tests below run the local stack's build() in the test
// process: embedded JetStream, a fresh PostgreSQL database, the demo portal
// on an embedded fake Bitrix24 and every service. They differ from
// TestDemoCurlIsAccepted in that they reach into the stack (restart the
// broker, stop one service, cut PostgreSQL) and read its log output.

// chaos reports whether the long fault variants were asked for
// (B24HUB_CHAOS=1, `go tool task chaos`).
func chaos() bool { return os.Getenv("B24HUB_CHAOS") == "1" }

// pick returns short normally and long under B24HUB_CHAOS=1.
func pick[T any](short, long T) T {
	if chaos() {
		return long
	}
	return short
}

// parallelShort runs a fault test in parallel with the other fault tests
// in the short variants: they mostly wait (outages, back-off), each has its
// own broker, database, ports and fake portal, and together they stay
// within the test suite's time budget. Tests that set the global tracer
// provider never call it, so they run alone, before these start. The long
// variants run one after another.
func parallelShort(t *testing.T) {
	if !chaos() {
		t.Parallel()
	}
}

// stackOptions configure startStack.
type stackOptions struct {
	// env overrides or adds B24HUB_* variables.
	env map[string]string
	// databaseURL is where the stack's pool connects; default a fresh
	// pgtest database. assertDB is always a direct connection to the same
	// database.
	databaseURL, assertDB string
	// without names runners the test starts itself (or never).
	without []string
	// noQuiesce skips waiting for the first reconciliation to be processed.
	noQuiesce bool
}

// testStack is a running stack plus what the tests observe.
type testStack struct {
	*stack
	// nc and js are the test code's own, as HarnessUser: they shadow the
	// stack's (the topology admin's), so what a test reads or publishes
	// on the bus is never mistaken for what a service may do.
	nc   *nats.Conn
	js   jetstream.JetStream
	t    *testing.T
	dir  string
	logs *syncBuffer
	log  *slog.Logger  // the stack's logger, writing to logs
	db   *pgxpool.Pool // direct to the database, for assertions
	tel  *telemetry.Telemetry
	// getenv is the environment the services were configured from; dbURL
	// is where the stack's pool connects.
	getenv func(string) string
	dbURL  string

	mu      sync.Mutex
	runners map[string]*runner
	exits   []string // runners that returned while they should have run
}

type runner struct {
	cancel context.CancelFunc
	done   chan error
}

// syncBuffer is the stack's stdout and log writer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startStack builds the stack as run() does and starts its runners. Every
// listener is on a random loopback port. The stack stops when t ends.
func startStack(t *testing.T, o stackOptions) *testStack {
	t.Helper()
	if o.databaseURL == "" {
		o.databaseURL = pgtest.NewDatabase(t)
		o.assertDB = o.databaseURL
	}
	dir := t.TempDir()
	env := map[string]string{
		"B24HUB_DEV_DATA_DIR":  dir,
		"B24HUB_DEV_NATS_PORT": "-1",
		"B24HUB_INGRESS_ADDR":  "127.0.0.1:0",
		"B24HUB_ADMIN_ADDR":    "127.0.0.1:0",
		"B24HUB_MONITOR_ADDR":  "127.0.0.1:0",
		"B24HUB_DEV_FAKE_ADDR": "127.0.0.1:0",
		"B24HUB_LOG_LEVEL":     "info",
		"B24HUB_DATABASE_URL":  o.databaseURL,
		// Transient failures (PostgreSQL or the portal away) retry within
		// seconds, not minutes, so the tests can wait for recovery.
		"B24HUB_DEALSYNC_BACKOFF":     "500ms,1s,2s",
		"B24HUB_DEALSYNC_MAX_DELIVER": "40",
		"B24HUB_DEALSYNC_ACK_WAIT":    "5s",
		"B24HUB_SHUTDOWN_TIMEOUT":     "5s",
	}
	for k, v := range o.env {
		env[k] = v
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := configFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.harness = true
	logs := &syncBuffer{}
	log := telemetry.NewLogger(logs, telemetry.ParseLevel(env["B24HUB_LOG_LEVEL"]), "devstack")
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "b24hub-devstack-test", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if installTracer != nil {
		installTracer()
	}
	// build's context must live as long as the stack: it runs the portal
	// registry's KV watch (as run() passes its own long-lived context).
	bctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	st, err := build(bctx, cfg, getenv, log, tel)
	if err != nil {
		t.Fatal(err)
	}
	s := &testStack{stack: st, t: t, dir: dir, logs: logs, log: log, tel: tel, runners: map[string]*runner{},
		getenv: getenv, dbURL: o.databaseURL}
	s.nc = s.connectAs(HarnessUser)
	if s.js, err = jetstream.New(s.nc); err != nil {
		t.Fatal(err)
	}
	db, err := pgxpool.New(ctx, o.assertDB)
	if err != nil {
		t.Fatal(err)
	}
	s.db = db
	t.Cleanup(func() {
		s.stopAll()
		// Every service ran as its own identity: anything the server
		// refused is a permission its declaration lacks (or a service
		// doing what it must not).
		// Connections named intruder-… are refused on purpose.
		if n := s.refusals("") - s.refusals(intruderPrefix); n > 0 {
			t.Errorf("the embedded NATS server refused %d publishes, subscriptions or connections (grep %q in the stack log)", n, ViolationLog)
		}
		st.close()
		db.Close()
		_ = tel.Shutdown(context.Background())
		if t.Failed() {
			t.Logf("stack log (last 8 KiB):\n%s", tail(logs.String(), 8<<10))
			// B24HUB_STACK_LOG_DIR keeps the whole log of a failed test.
			if d := os.Getenv("B24HUB_STACK_LOG_DIR"); d != "" {
				f := filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_")+".log")
				if err := os.WriteFile(f, []byte(logs.String()), 0o644); err == nil {
					t.Logf("whole stack log: %s", f)
				}
			}
		}
	})
	skip := map[string]bool{}
	for _, n := range o.without {
		skip[n] = true
	}
	for name, fn := range st.runners() {
		if !skip[name] {
			s.start(name, fn)
		}
	}
	// Ready: the ingress answers and every consumer exists.
	s.eventually("stack ready", 60*time.Second, func() bool {
		for name, ready := range st.readiness() {
			if skip[name] {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			err := ready(rctx)
			cancel()
			if err != nil {
				return false
			}
		}
		return true
	})
	if !o.noQuiesce {
		s.quiesce()
	}
	return s
}

// demoDeals is how many deals startDemoFake creates; the subscriptions
// service's first reconciliation publishes one ONCRMDEALUPDATE for each.
const demoDeals = 760

// quiesce waits for the first reconciliation (one event per demo deal) to
// be published and for every consumer to have processed everything, so a
// test starts from a quiet stack whose deals are all mirrored.
func (s *testStack) quiesce() {
	s.t.Helper()
	ctx := context.Background()
	idle := 0
	s.eventually("stack quiet after the first reconciliation", 90*time.Second, func() bool {
		str, err := s.js.Stream(ctx, eventbus.StreamEvents)
		if err != nil {
			return false
		}
		info, err := str.Info(ctx)
		if err != nil || info.State.Msgs < demoDeals {
			return false
		}
		if s.pending() != 0 {
			idle = 0
			return false
		}
		idle++
		return idle >= 3
	})
}

// pending is the number of messages not yet acknowledged by the durable
// consumers named (every consumer when none is named) of the raw-event and
// outcome streams.
//
// It is -1 when the broker could not say: a listing cut short (a slow
// answer past the deadline) would undercount, and a wait for "idle" would
// pass early.
func (s *testStack) pending(durables ...string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for _, name := range []string{eventbus.StreamEvents, eventbus.StreamOutcomes} {
		str, err := s.js.Stream(ctx, name)
		if err != nil {
			return -1
		}
		list := str.ListConsumers(ctx)
		for ci := range list.Info() {
			// Durable consumers only: a reader's abandoned ordered
			// consumer (eachStreamMsg) is not the stack's work.
			if ci.Config.Durable == "" {
				continue
			}
			if len(durables) == 0 || slices.Contains(durables, ci.Name) {
				n += int(ci.NumPending) + ci.NumAckPending
			}
		}
		if list.Err() != nil {
			return -1
		}
	}
	return n
}

// installTracer, when set by a test, replaces the global tracer provider
// after telemetry.Setup and before the services are built.
var installTracer func()

// start runs fn as a named runner until stop or the end of the test. A
// runner that returns on its own is recorded as a failure.
func (s *testStack) start(name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{cancel: cancel, done: make(chan error, 1)}
	s.mu.Lock()
	s.runners[name] = r
	s.mu.Unlock()
	go func() {
		err := fn(ctx)
		if ctx.Err() == nil {
			s.mu.Lock()
			s.exits = append(s.exits, fmt.Sprintf("%s: %v", name, err))
			s.mu.Unlock()
		}
		r.done <- err
	}()
}

// stop cancels one runner and waits for it (bounded).
func (s *testStack) stop(name string) error {
	s.mu.Lock()
	r := s.runners[name]
	delete(s.runners, name)
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.cancel()
	select {
	case err := <-r.done:
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not stop within 30s", name)
	}
}

func (s *testStack) stopAll() {
	s.mu.Lock()
	var names []string
	for n := range s.runners {
		names = append(names, n)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			if err := s.stop(n); err != nil {
				s.t.Errorf("stop %s: %v", n, err)
			}
		})
	}
	wg.Wait()
}

// checkRunners fails the test when a service returned on its own: in
// run() that would have stopped the whole stack.
func (s *testStack) checkRunners() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.exits {
		s.t.Errorf("service exited on its own: %s", e)
	}
}

// eventually polls cond until it holds; timeout is how long it normally
// takes at most, the wait goes on to at least testwait.Patience.
func (s *testStack) eventually(what string, timeout time.Duration, cond func() bool) {
	s.t.Helper()
	testwait.Within(s.t, timeout, what, cond)
}

// refusals counts the embedded server's refusals in the stack log, of
// the connections whose client name starts with namePrefix (every
// connection for "").
func (s *testStack) refusals(namePrefix string) int {
	n := 0
	for line := range strings.Lines(s.logs.String()) {
		if strings.Contains(line, ViolationLog) && (namePrefix == "" || strings.Contains(line, ":go:"+namePrefix)) {
			n++
		}
	}
	return n
}

// connectAs connects to the embedded server as one of its identities (a
// service, a command publisher, b24ctl, the topology admin or
// HarnessUser), as that identity's process would; the connection is closed
// when the test ends.
func (s *testStack) connectAs(user string, opts ...nats.Option) *nats.Conn {
	s.t.Helper()
	return s.connectAsVia(s.natsURL, user, opts...)
}

// connectAsVia is connectAs through url (a proxy to the server).
func (s *testStack) connectAsVia(url, user string, opts ...nats.Option) *nats.Conn {
	s.t.Helper()
	if s.ids == nil {
		// B24HUB_NATS_URL (a natstest cluster without authorization):
		// the external server's own identity, as every service has.
		nc, err := nats.Connect(url, append([]nats.Option{nats.Name("b24hub-devstack-" + user), nats.MaxReconnects(-1)}, opts...)...)
		if err != nil {
			s.t.Fatal(err)
		}
		s.t.Cleanup(nc.Close)
		return nc
	}
	nc, err := s.ids.connect(url, user, opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(nc.Close)
	return nc
}

func (s *testStack) ingressURL() string { return "http://" + s.ingress.Addr() + "/bitrix24/events" }

// client is an HTTP client for the ingress: short timeout, no retries.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// postResult is one answered ingress request.
type postResult struct {
	status  int
	id      string
	took    time.Duration
	err     error
	started time.Time
}

// post sends one form body to the ingress.
func (s *testStack) post(body string) postResult {
	start := time.Now()
	resp, err := client.Post(s.ingressURL(), "application/x-www-form-urlencoded", strings.NewReader(body))
	r := postResult{took: time.Since(start), err: err, started: start}
	if err != nil {
		return r
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	r.status, r.took = resp.StatusCode, time.Since(start)
	if resp.StatusCode == http.StatusOK {
		if _, after, ok := strings.Cut(string(b), `"id":"`); ok {
			r.id, _, _ = strings.Cut(after, `"`)
		}
	}
	return r
}

// tsSeq makes every generated event unique (the message id hashes ts).
var tsSeq atomic.Int64

func init() { tsSeq.Store(time.Now().Unix()) }

// dealUpdate is a real ONCRMDEALUPDATE for the demo portal about deal id,
// unique by its ts.
func (s *testStack) dealUpdate(id int) string {
	return s.demo.DealUpdateBody(strconv.Itoa(id), tsSeq.Add(1))
}

// streamMsgIDs returns the Nats-Msg-Id of every message in stream.
func (s *testStack) streamMsgIDs(stream string) map[string]int {
	s.t.Helper()
	return s.eachStreamMsg(stream, nil)
}

// eachStreamMsg reads the whole stream in order, calling each (when not
// nil) with every message's id and metadata, and counts the ids.
func (s *testStack) eachStreamMsg(stream string, each func(id string, md *jetstream.MsgMetadata)) map[string]int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := s.js
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		s.t.Fatal(err)
	}
	str, err := js.Stream(ctx, stream)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	ids := map[string]int{}
	var last uint64 // stream sequence of the last message read
	for n := uint64(0); n < info.State.Msgs; n++ {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			// On a cluster after a fault the ordered consumer can fail
			// over and over ("no responders" from its pull requests):
			// read the rest one message at a time from the stream leader.
			s.t.Logf("reading %s: %v after %d of %d; reading the rest by sequence", stream, err, n, info.State.Msgs)
			for seq := last + 1; seq <= info.State.LastSeq; seq++ {
				gctx, gcancel := context.WithTimeout(context.Background(), 10*time.Second)
				raw, err := str.GetMsg(gctx, seq)
				gcancel()
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					continue
				}
				if err != nil {
					s.t.Fatalf("reading %s at sequence %d: %v", stream, seq, err)
				}
				id := raw.Header.Get(eventbus.HeaderMsgID)
				ids[id]++
				if each != nil {
					each(id, &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: seq}, Timestamp: raw.Time})
				}
			}
			return ids
		}
		md, _ := m.Metadata()
		if md != nil {
			last = md.Sequence.Stream
		}
		id := m.Headers().Get(eventbus.HeaderMsgID)
		ids[id]++
		if each != nil {
			each(id, md)
		}
	}
	return ids
}

// streamSubjects counts the messages per subject in stream.
func (s *testStack) streamSubjects(stream, filter string) map[string]uint64 {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	str, err := s.js.Stream(ctx, stream)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		s.t.Fatal(err)
	}
	return info.State.Subjects
}

// ledgerCounts returns how many of ids have a webhook_events row and how
// many have a final deal-sync delivery (done or skipped).
func (s *testStack) ledgerCounts(ids []string) (events, done int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.db.QueryRow(ctx, `SELECT
		(SELECT count(DISTINCT id) FROM monitor.webhook_events WHERE id = ANY($1)),
		(SELECT count(*) FROM monitor.deliveries WHERE event_id = ANY($1) AND consumer = 'deal-sync' AND status IN ('done','skipped'))`,
		ids).Scan(&events, &done)
	if err != nil {
		return -1, -1
	}
	return events, done
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// mirroredOpportunities reads deal-sync's mirror of the given deals: deal
// id → OPPORTUNITY as stored (empty when unset), for comparing with the
// fake portal.
func mirroredOpportunities(t *testing.T, db *pgxpool.Pool, ids []int64) map[int64]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT deal_id, coalesce(opportunity, '') FROM deal_sync.deals WHERE deal_id = ANY($1)`, ids)
	if err != nil {
		t.Fatal(err)
	}
	mirrored := map[int64]string{}
	for rows.Next() {
		var id int64
		var opp string
		if err := rows.Scan(&id, &opp); err != nil {
			t.Fatal(err)
		}
		mirrored[id] = opp
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return mirrored
}
