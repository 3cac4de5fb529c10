package destinations_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/testwait"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/destinations"
	"github.com/b24hub/b24hub/services/destinations/internal/webhook"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// verify is the receiver side of Standard Webhooks, written from the
// specification: HMAC-SHA256 over "id.timestamp.body" with the base64 key
// after "whsec_", compared in constant time with each "v1," signature of
// the space-separated header, and a timestamp within five minutes.
func verify(r *http.Request, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q out of tolerance", ts)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
		v, b64, ok := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && v == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no valid signature in %q", r.Header.Get("webhook-signature"))
}

// receiver is a de-duplicating test endpoint: fail decides, per request,
// whether to answer with an error (or hang); every accepted id is kept
// once, with the order of first receipt per entity.
type receiver struct {
	t    *testing.T
	srv  *httptest.Server
	fail func(n int, id string) (status int, hang bool, retryAfter string)

	mu       sync.Mutex
	requests int
	byID     map[string]int    // webhook-id -> requests, failed ones included
	traces   map[string]string // webhook-id -> traceparent
	seen     map[string]bool
	order    map[string][]int // entity -> sequence numbers in first-receipt order
	got      chan string
	release  chan struct{}
}

func newReceiver(t *testing.T, fail func(n int, id string) (int, bool, string)) *receiver {
	rc := &receiver{t: t, fail: fail, seen: map[string]bool{}, byID: map[string]int{}, traces: map[string]string{}, order: map[string][]int{}, got: make(chan string, 1000), release: make(chan struct{})}
	rc.srv = httptest.NewTLSServer(http.HandlerFunc(rc.serve))
	t.Cleanup(func() { close(rc.release); rc.srv.Close() })
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := verify(r, body); err != nil {
		rc.t.Errorf("signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := r.Header.Get("webhook-id")
	rc.mu.Lock()
	rc.requests++
	rc.byID[id]++
	rc.traces[id] = r.Header.Get("traceparent")
	n := rc.requests
	rc.mu.Unlock()
	if rc.fail != nil {
		status, hang, ra := rc.fail(n, id)
		if hang {
			select {
			case <-rc.release:
			case <-r.Context().Done():
			}
			return
		}
		if status != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			w.WriteHeader(status)
			return
		}
	}
	var b struct {
		Type string `json:"type"`
		Data struct {
			EntityID string `json:"entity_id"`
			ID       string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Type != "b24.change.deal" {
		rc.t.Errorf("body %s: %v", body, err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !rc.seen[id] {
		rc.seen[id] = true
		seq, _ := strconv.Atoi(strings.TrimPrefix(b.Data.ID, b.Data.EntityID+"-"))
		rc.order[b.Data.EntityID] = append(rc.order[b.Data.EntityID], seq)
		rc.got <- id
	}
}

func (rc *receiver) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(testwait.Patience)
	for range n {
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("only part of %d deliveries arrived", n)
		}
	}
}

type env struct {
	srv  *natstest.Server
	js   jetstream.JetStream
	dir  string
	file string
}

func newEnv(t *testing.T) *env {
	// The service connects as its own NATS identity, with exactly the
	// permissions its declaration derives: pausing a durable or reading a
	// stored message it was not allowed would fail here.
	perms := destinations.Declaration.Permissions()
	srv := natstest.Start(t, natstest.WithIdentities(natstest.Identity{User: perms.User, Publish: perms.Publish,
		Subscribe: perms.Subscribe, AllowResponses: perms.AllowResponses}))
	_, js := srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, js: js, dir: dir, file: filepath.Join(dir, "destinations.yaml")}
}

func (e *env) declare(t *testing.T, rcs map[string]*receiver, timeout string, extra ...string) {
	var b strings.Builder
	b.WriteString("destinations:\n")
	for name, rc := range rcs {
		fmt.Fprintf(&b, "  - {name: %s, url: %q, receives: {changes: [deal]}, secret_files: [%s], timeout: %s, rate: 1000, concurrency: 4%s}\n",
			name, rc.srv.URL+"/hook", filepath.Join(e.dir, "key"), timeout, strings.Join(append([]string{""}, extra...), ", "))
	}
	if err := os.WriteFile(e.file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs an instance of the service trusting the receivers' test CA
// and reaching loopback (an explicit exception); stop ends it and waits.
func (e *env) start(t *testing.T, rcs map[string]*receiver) (stop func()) {
	return e.run(t, rcs, nil).stop
}

// instance is one running copy of the service on its own connection.
type instance struct {
	svc  *destinations.Service
	nc   *nats.Conn
	stop func()
	// crash ends the instance as a lost process would: its connection
	// goes first, so nothing it holds is handed back.
	crash func()
}

func (e *env) run(t *testing.T, rcs map[string]*receiver, tune func(*destinations.Config)) *instance {
	pool := x509.NewCertPool()
	for _, rc := range rcs {
		pool.AddCert(rc.srv.Certificate())
	}
	cfg := destinations.DefaultConfig()
	cfg.File, cfg.ReloadInterval = e.file, 50*time.Millisecond
	cfg.Delivery.InitialInterval, cfg.Delivery.MaxInterval = 20*time.Millisecond, 200*time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	nc := e.srv.ConnectAs(t, "destinations")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sender := webhook.NewSender(webhook.SenderOptions{AllowedNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, TLS: tlsConfig(pool)})
	svc, err := destinations.New(cfg, destinations.Deps{JS: js, NATS: nc, Logger: testLogger(), Sender: sender})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	for name := range rcs {
		e.waitConsumer(t, "dest-"+name)
	}
	var once sync.Once
	end := func(crash bool) {
		once.Do(func() {
			if crash {
				nc.Close()
			}
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(func() { end(true) })
	return &instance{svc: svc, nc: nc, stop: func() { end(false) }, crash: func() { end(true) }}
}

func (e *env) waitConsumer(t *testing.T, durable string) {
	t.Helper()
	waitFor(t, "durable "+durable+" created", func() bool {
		_, err := e.js.Consumer(context.Background(), eventbus.StreamChanges, durable)
		return err == nil
	})
}

// publish stores change seq of a deal, as the deal-sync service does.
func (e *env) publish(t *testing.T, entity string, seq int) {
	id := fmt.Sprintf("%s-%d", entity, seq)
	data, _ := proto.Marshal(&eventsv1.DomainChange{Id: id, MemberId: "p1", EntityType: "deal", EntityId: entity})
	msg := &nats.Msg{Subject: eventbus.Change("deal", "p1", entity), Data: data, Header: nats.Header{}}
	msg.Header.Set(eventbus.HeaderMsgID, id)
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// Every change reaches the de-duplicating receiver exactly once, in order
// per entity, through 500s, a 429 with Retry-After and a hanging
// connection (timeout).
func TestEveryChangeOnceInOrderThroughFailures(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, failOnPurpose)
	rcs := map[string]*receiver{"crm": rc}
	e.declare(t, rcs, "500ms")
	stop := e.start(t, rcs)
	defer stop()
	const entities, per = 3, 10
	for s := range per {
		for en := range entities {
			e.publish(t, fmt.Sprintf("d%d", en), s)
		}
	}
	rc.wait(t, per*entities)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for en := range entities {
		got := rc.order[fmt.Sprintf("d%d", en)]
		if len(got) != per {
			t.Errorf("d%d: %d changes, want %d", en, len(got), per)
		}
		for i, s := range got {
			if s != i {
				t.Errorf("d%d: order %v", en, got)
				break
			}
		}
	}
}

func failOnPurpose(n int, _ string) (int, bool, string) {
	switch n {
	case 2, 3:
		return http.StatusInternalServerError, false, ""
	case 5:
		return http.StatusTooManyRequests, false, "1"
	case 8:
		return 0, true, "" // hangs until the client's timeout
	}
	return 0, false, ""
}

// None is lost and none is seen twice by a de-duplicating receiver when
// the delivering service restarts in the middle, failures included.
func TestNoneLostAcrossRestart(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, failOnPurpose)
	rcs := map[string]*receiver{"crm": rc}
	e.declare(t, rcs, "500ms")
	stop := e.start(t, rcs)
	const entities, per = 3, 10
	for s := range per {
		for en := range entities {
			e.publish(t, fmt.Sprintf("d%d", en), s)
		}
	}
	rc.wait(t, 10)
	stop()
	for s := per; s < 2*per; s++ {
		for en := range entities {
			e.publish(t, fmt.Sprintf("d%d", en), s)
		}
	}
	stop = e.start(t, rcs)
	defer stop()
	rc.wait(t, 2*per*entities-10)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for en := range entities {
		if got := rc.order[fmt.Sprintf("d%d", en)]; len(got) != 2*per {
			t.Errorf("d%d: %d distinct changes, want %d", en, len(got), 2*per)
		}
	}
}

// A destination whose endpoint hangs holds back only itself: the healthy
// one receives everything while the dead one is still stuck on its first
// requests.
func TestDeadDestinationDoesNotDelayAHealthyOne(t *testing.T) {
	e := newEnv(t)
	dead := newReceiver(t, func(int, string) (int, bool, string) { return 0, true, "" })
	healthy := newReceiver(t, nil)
	rcs := map[string]*receiver{"dead": dead, "healthy": healthy}
	e.declare(t, rcs, "1m")
	stop := e.start(t, rcs)
	defer stop()
	for s := range 20 {
		e.publish(t, fmt.Sprintf("d%d", s%5), s/5)
	}
	healthy.wait(t, 20)
	dead.mu.Lock()
	defer dead.mu.Unlock()
	if dead.requests > 4 || len(dead.seen) != 0 {
		t.Errorf("dead destination: %d requests, %d delivered; want its 4 workers stuck on their first", dead.requests, len(dead.seen))
	}
}

// A 4xx other than 429 is not retried: one request, a dead letter naming
// the destination's durable, and an outcome for the ledger.
func TestClientErrorIsDeadLetteredWithoutRetry(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(int, string) (int, bool, string) { return http.StatusBadRequest, false, "" })
	rcs := map[string]*receiver{"crm": rc}
	e.declare(t, rcs, "5s")
	stop := e.start(t, rcs)
	defer stop()
	e.publish(t, "d1", 0)
	cons, err := e.js.CreateOrUpdateConsumer(context.Background(), eventbus.StreamDead, jetstream.ConsumerConfig{
		FilterSubjects: []string{eventbus.Dead("dest-crm", "p1", "change_deal")}})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var dl jetstream.Msg
	for m := range msgs.Messages() {
		dl = m
	}
	if dl == nil {
		t.Fatal("no dead letter")
	}
	if r := dl.Headers().Get(eventbus.HeaderDeadReason); r != "permanent" || !strings.Contains(dl.Headers().Get(eventbus.HeaderDeadError), "status 400") {
		t.Errorf("dead letter headers %v", dl.Headers())
	}
	oc, err := e.js.CreateOrUpdateConsumer(context.Background(), eventbus.StreamOutcomes, jetstream.ConsumerConfig{
		FilterSubjects: []string{eventbus.Outcome("dest-crm", "p1")}})
	if err != nil {
		t.Fatal(err)
	}
	om, err := oc.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range om.Messages() {
		var o eventsv1.Outcome
		if err := proto.Unmarshal(m.Data(), &o); err != nil || o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD || !strings.Contains(o.Error, "HTTP 400") {
			t.Errorf("outcome %v: %v", &o, err)
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.requests != 1 {
		t.Errorf("%d requests, want 1 (no retry on 400)", rc.requests)
	}
}

// webhookIDOf is the webhook-id a destination's receiver gets for the
// change id (delivery.DeliveryID, written from its definition).
func webhookIDOf(t *testing.T, destination, changeID string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(destination + "\x00" + changeID))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// testLogger discards the service's log, or writes it to stderr with
// B24HUB_TEST_LOG=1.
func testLogger() *slog.Logger {
	if os.Getenv("B24HUB_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
