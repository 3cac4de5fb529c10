package monitor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/testwait"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// proxy is a TCP proxy in front of PostgreSQL that a test can cut, to
// simulate the database going away and coming back on the same address.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start listens (again) on the proxy's address.
func (p *proxy) Start() {
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly after Stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// Stop closes the listener and every proxied connection.
func (p *proxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// clock is the injectable clock: real time plus an offset the test moves.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// hook records webhook sink deliveries.
type hook struct {
	mu   sync.Mutex
	got  []map[string]any
	srv  *httptest.Server
	slck []string
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		h.mu.Lock()
		defer h.mu.Unlock()
		if r.URL.Path == "/slack" {
			h.slck = append(h.slck, m["text"].(string))
			return
		}
		h.got = append(h.got, m)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) states(key string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.got {
		if m["key"] == key {
			out = append(out, m["state"].(string))
		}
	}
	return out
}

// env is a running monitor with its broker, database and clock.
type env struct {
	t     *testing.T
	srv   *natstest.Server
	js    jetstream.JetStream
	nc    *nats.Conn
	pool  *pgxpool.Pool // direct, for assertions
	proxy *proxy
	svc   *monitor.Service
	clock *clock
	hook  *hook
	pub   *eventbus.Publisher
	base  string
	stop  func()
	// ticks counts the alert evaluator's ticks, as the broker sees them.
	ticks atomic.Int64
}

// rulesFor writes a rules file whose business hours are open now (any
// weekday, from an hour ago for four hours), so the test can move the clock
// within them.
func rulesFor(t *testing.T, hookURL string) string {
	now := time.Now().UTC()
	y := `evaluate_every: 100ms
calendars:
  biz: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], start: "` + now.Add(-time.Hour).Format("15:04") +
		`", end: "` + now.Add(3*time.Hour).Format("15:04") + `"}
rules:
  - {name: deal-update-silence, kind: silence, event: ONCRMDEALUPDATE, max_quiet: 10m, calendar: biz}
  - {name: dead-letters, kind: dead_letters, window: 15m}
sinks:
  - {type: webhook, url: "` + hookURL + `/hook"}
  - {type: slack, url: "` + hookURL + `/slack"}
  - {type: log}
`
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startOption adjusts the monitor's configuration before it starts.
type startOption func(*monitor.Config)

// installedPortals are registered in the B24_PORTALS bucket before every
// test's monitor starts: the alert rules watch only registered portals.
var installedPortals = []string{"m1", "m2"}

func start(t *testing.T, opts ...startOption) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{}}
	e.srv = natstest.Start(t)
	e.nc, e.js = e.srv.JetStream(t)
	ctx := context.Background()
	// Every tick of the alert evaluator begins by listing the consumers of
	// B24_EVENTS (the unfinished-age gauge), then evaluates and notifies.
	if _, err := e.nc.Subscribe("$JS.API.CONSUMER.LIST."+eventbus.StreamEvents, func(*nats.Msg) { e.ticks.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := eventbus.Provision(ctx, e.js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range installedPortals {
		e.install(ctx, m, true)
	}
	dsn := pgtest.NewDatabase(t)
	direct, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(direct.Close)
	e.pool = direct
	u, _ := url.Parse(dsn)
	e.proxy = newProxy(t, u.Host)
	u.Host = e.proxy.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.hook = newHook(t)
	cfg := monitor.Config{Addr: "127.0.0.1:0", Token: "test-token-0123456789", AlertRulesFile: rulesFor(t, e.hook.srv.URL),
		TraceURLTemplate: "http://jaeger:16686/trace/{trace_id}", BatchWait: 5 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.svc, err = monitor.New(cfg, monitor.Deps{NC: e.nc, Pool: pool, Logger: log, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.base = "http://" + e.svc.Addr()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.svc.Run(runCtx) }()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
	})
	e.pub = eventbus.NewPublisher(e.js)
	e.eventually("ready", 20*time.Second, func() bool { return e.svc.Ready(ctx) == nil })
	return e
}

// evaluated returns once the alert evaluator has run a whole evaluation,
// notifications included, that began after the call: it waits for three
// more ticks to begin (the evaluator runs one tick at a time, so the second
// of them ran from start to end after the first was seen). A test that
// asserts that no notification was sent checks after it, not after a
// sleep.
func (e *env) evaluated() {
	e.t.Helper()
	from := e.ticks.Load()
	e.eventually("a whole alert evaluation", 10*time.Second, func() bool { return e.ticks.Load() >= from+3 })
}

// eventually polls cond until it holds. within is how long it normally
// takes at most; the wait goes on to at least two minutes, because a loaded
// machine (a full CI run next to other builds) can be many times slower and
// a passing test returns as soon as cond holds anyway.
func (e *env) eventually(what string, within time.Duration, cond func() bool) {
	e.t.Helper()
	testwait.Within(e.t, within, what, cond)
}

func envelope(id, member, event, entity string, at time.Time, src eventsv1.Source) *eventsv1.Envelope {
	return &eventsv1.Envelope{MessageId: id, MemberId: member, Domain: member + ".bitrix24.ru", Event: event, EntityId: entity,
		ReceivedAt: timestamppb.New(at), Source: src, ContentType: "application/x-www-form-urlencoded",
		Body: []byte("event=" + event + "&data[FIELDS][ID]=" + entity)}
}

func (e *env) publishEvent(ctx context.Context, env *eventsv1.Envelope) {
	e.t.Helper()
	data, _ := proto.Marshal(env)
	if _, err := e.pub.Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent(env.MemberId, env.Event), MsgID: env.MessageId, Data: data}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) publishOutcome(ctx context.Context, eventID, consumer, member string, status eventsv1.OutcomeStatus, attempt uint32, errText, kind string) {
	e.t.Helper()
	o := &eventsv1.Outcome{EventId: eventID, Consumer: consumer, Status: status, Attempt: attempt, Error: errText, ErrorKind: kind,
		MemberId: member, Event: "ONCRMDEALUPDATE", At: timestamppb.New(e.clock.Now()), Duration: durationpb.New(12 * time.Millisecond)}
	data, _ := proto.Marshal(o)
	if _, err := e.pub.Publish(ctx, eventbus.Message{Subject: eventbus.Outcome(consumer, member),
		MsgID: eventID + "/" + consumer + "/" + string(rune('0'+attempt)) + status.String(), Data: data}); err != nil {
		e.t.Error(err) // may run on a subscription goroutine: no Fatal
	}
}

func (e *env) publishDead(ctx context.Context, env *eventsv1.Envelope, consumer, reason, errText string) {
	e.t.Helper()
	data, _ := proto.Marshal(env)
	h := nats.Header{}
	h.Set(eventbus.HeaderDeadReason, reason)
	h.Set(eventbus.HeaderDeadError, errText)
	h.Set(eventbus.HeaderDeadConsumer, consumer)
	h.Set(eventbus.HeaderDeadDeliveries, "5")
	h.Set(eventbus.HeaderDeadSubject, eventbus.RawEvent(env.MemberId, env.Event))
	h.Set(eventbus.HeaderDeadStream, eventbus.StreamEvents)
	h.Set(eventbus.HeaderOriginalMsgID, env.MessageId)
	if _, err := e.pub.Publish(ctx, eventbus.Message{Subject: eventbus.Dead(consumer, env.MemberId, env.Event),
		MsgID: "dead/" + consumer + "/" + env.MessageId, Data: data, Header: h}); err != nil {
		e.t.Fatal(err)
	}
}

// fakeConsumer answers every replayed raw event with a DONE outcome for
// consumer, as the consumer runtime would after a successful retry.
func (e *env) fakeConsumer(consumer string) {
	sub, err := e.nc.Subscribe(eventbus.EventsPrefix+".>", func(m *nats.Msg) {
		var env eventsv1.Envelope
		if proto.Unmarshal(m.Data, &env) != nil || env.Source != eventsv1.Source_SOURCE_REPLAY {
			return
		}
		e.publishOutcome(context.Background(), env.MessageId, consumer, env.MemberId, eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, 1, "", "")
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// get calls the API with the bearer token and decodes JSON into out.
func (e *env) get(path string, out any) int {
	e.t.Helper()
	return e.do(http.MethodGet, path, nil, out)
}

func (e *env) do(method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.svc.Token())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// install puts member into the B24_PORTALS bucket as the app-install flow
// does; active false is what ONAPPUNINSTALL leaves.
func (e *env) install(ctx context.Context, member string, active bool) {
	e.t.Helper()
	kv, err := e.js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		e.t.Fatal(err)
	}
	rec := portals.Installed{MemberID: member, Domain: member + ".bitrix24.ru", TokenSHA256: portals.HashToken("token-" + member),
		ClientEndpoint: "https://" + member + ".bitrix24.ru/rest/", Active: active}
	if err := portals.PutInstalled(ctx, kv, rec); err != nil {
		e.t.Fatal(err)
	}
}

// forget deletes member from the B24_PORTALS bucket.
func (e *env) forget(ctx context.Context, member string) {
	e.t.Helper()
	kv, err := e.js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := kv.Delete(ctx, member); err != nil {
		e.t.Fatal(err)
	}
}
