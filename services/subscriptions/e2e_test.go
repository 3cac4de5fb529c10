package subscriptions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"google.golang.org/protobuf/types/known/timestamppb"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/testwait"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/b24hub/b24hub/services/subscriptions"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

const (
	memberA = "aaaa0000aaaa0000aaaa0000aaaa0000" // push mode: reconciliation recovers drops
	memberB = "bbbb0000bbbb0000bbbb0000bbbb0000" // offline mode: the queue carries everything
	appID   = "local.b24hub.test"
)

// reconcileEvery is the reconciliation period of the test service.
const reconcileEvery = 2 * time.Second

type stack struct {
	t       *testing.T
	nc      *nats.Conn
	js      jetstream.JetStream
	reg     *portals.Registry
	ingress string // base URL
	log     *slog.Logger
	svc     *subscriptions.Service
	env     map[string]string
	pool    *pgxpool.Pool
	// stopFirst stops svc and waits for it.
	stopFirst func()
}

func quietLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("B24HUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// startStack runs JetStream, the ingress and the subscriptions service, the
// way the local stack wires them, against PostgreSQL.
func startStack(t *testing.T, fakes []*fakeportal.Portal, desiredYAML string) *stack {
	t.Helper()
	pool := pgtest.NewPool(t)
	srv := natstest.Start(t)
	nc, js := srv.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	log := quietLogger(t)
	reg := portals.NewRegistry()
	kv, err := js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.WatchKV(ctx, kv, log); err != nil {
		t.Fatal(err)
	}
	icfg, _ := ingress.ConfigFromEnv(func(string) string { return "" })
	icfg.Addr = "127.0.0.1:0"
	ing, err := ingress.New(icfg, ingress.Deps{NC: nc, Portals: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = ing.Run(ctx) }()

	var hosts []string
	for _, f := range fakes {
		hosts = append(hosts, strings.TrimPrefix(f.URL(), "http://"))
	}
	path := filepath.Join(t.TempDir(), "subscriptions.yaml")
	if err := os.WriteFile(path, []byte(desiredYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"B24HUB_SUBSCRIPTIONS_FILE":    path,
		"B24HUB_HANDLER_URL":           "http://" + ing.Addr(),
		"B24HUB_CREDENTIALS_KEY":       "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
		"B24HUB_INSTALL_ALLOWED_HOSTS": strings.Join(hosts, ","),
		"B24HUB_APP_CLIENT_ID":         appID,
		"B24HUB_APP_CLIENT_SECRET":     "secret",
		"B24HUB_SYNC_INTERVAL":         "1h", // re-binds must come from the install/update events
		"B24HUB_RECONCILE_INTERVAL":    reconcileEvery.String(),
		"B24HUB_RECONCILE_OVERLAP":     "2s",
		"B24HUB_OFFLINE_POLL_INTERVAL": "500ms",
		"B24HUB_PROBE_INTERVAL":        "1s",
		"B24HUB_LEASE_TTL":             "2s",
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	st := &stack{t: t, nc: nc, js: js, reg: reg, ingress: "http://" + ing.Addr(), log: log, env: env, pool: pool}
	st.svc, st.stopFirst = st.startService(ctx, "instance-1")
	return st
}

// startService runs one more replica of the service until ctx ends or the
// returned cancel is called (which waits for Run to return).
func (s *stack) startService(ctx context.Context, instance string) (*subscriptions.Service, func()) {
	t := s.t
	t.Helper()
	env := maps.Clone(s.env)
	env["B24HUB_INSTANCE_ID"] = instance
	cfg, err := subscriptions.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	svc, err := subscriptions.New(cfg, subscriptions.Deps{NC: s.nc, Pool: s.pool, Portals: s.reg, Logger: s.log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("subscriptions Run: %v", err)
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return svc, stop
}

func newFake(t *testing.T, member string) *fakeportal.Portal {
	t.Helper()
	f, err := fakeportal.New(fakeportal.Config{MemberID: member})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// app is the application as installed on every fake portal; the tests set
// InstallHandler.
func app(installHandler string) fakeportal.App {
	return fakeportal.App{ClientID: appID, ClientSecret: "secret", Code: appID, InstallHandler: installHandler}
}

// lastPush returns the portal's last push of event, after the pushes queued
// so far were attempted.
func lastPush(t *testing.T, f *fakeportal.Portal, event string) (fakeportal.Delivery, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	ds := f.Deliveries()
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].Event == event {
			return ds[i], true
		}
	}
	return fakeportal.Delivery{}, false
}

// capturedInstall installs a on f with a throwaway install handler and
// returns the ONAPPINSTALL body the portal sent: a genuine body, for tests
// to replay or tamper with.
func capturedInstall(t *testing.T, f *fakeportal.Portal, a fakeportal.App) (fakeportal.Install, []byte) {
	t.Helper()
	sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer sink.Close()
	a.InstallHandler = sink.URL + "/install"
	in := f.InstallApp(a)
	d, ok := lastPush(t, f, "ONAPPINSTALL")
	if !ok || d.Status != http.StatusOK {
		t.Fatalf("no ONAPPINSTALL captured: %+v", d)
	}
	return in, d.Body
}

// tamper replaces auth fields of a pushed body, keeping everything else
// (order included) as the portal sent it.
func tamper(t *testing.T, body []byte, auth map[string]string) []byte {
	t.Helper()
	b, err := b24event.Decode(b24event.ContentTypeForm, body, b24event.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := slices.Clone(b.Fields)
	for i, f := range out {
		if v, ok := auth[strings.TrimSuffix(strings.TrimPrefix(f.Key, "auth["), "]")]; ok && strings.HasPrefix(f.Key, "auth[") {
			out[i].Value = v
		}
	}
	return b24event.EncodeForm(out)
}

// postFrom posts body to the ingress from the loopback address from.
func (s *stack) postFrom(from string, body []byte) int {
	s.t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}}
	defer c.CloseIdleConnections()
	resp, err := c.Post(s.ingress+"/bitrix24/events", "application/x-www-form-urlencoded", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func (s *stack) post(body []byte) int {
	s.t.Helper()
	resp, err := http.Post(s.ingress+"/bitrix24/events", "application/x-www-form-urlencoded", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// install installs the app on f; the portal POSTs ONAPPINSTALL to the
// ingress. Bitrix24 never resends a push its handler refused, and the
// ingress answers 503 until the service subscribed to install
// verifications, so the admin installs again (with fresh tokens) until the
// push is accepted.
func install(t *testing.T, s *stack, f *fakeportal.Portal) fakeportal.Install {
	t.Helper()
	var in fakeportal.Install
	eventually(t, 10*time.Second, "install of "+f.MemberID(), func() (bool, string) {
		in = f.InstallApp(app(s.ingress + "/bitrix24/events"))
		d, ok := lastPush(t, f, "ONAPPINSTALL")
		return ok && d.Status == http.StatusOK, fmt.Sprintf("push %+v", d)
	})
	return in
}

// eventually polls cond until it holds. within is how long it normally
// takes at most; the wait goes on to at least two minutes, because a loaded
// machine can be many times slower and a passing test returns as soon as
// cond holds anyway.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var detail string
	if err := testwait.Until(time.Now().Add(max(within, testwait.Patience)), func() (ok bool) {
		ok, detail = cond()
		return ok
	}); err != nil {
		t.Fatalf("%s: %v: %s", what, err, detail)
	}
}

func hasBindings(f *fakeportal.Portal, want ...string) func() (bool, string) {
	return func() (bool, string) {
		have := strings.Join(f.Bindings(), "\n")
		for _, w := range want {
			if !strings.Contains(have, w) {
				return false, "bindings:\n" + have
			}
		}
		return true, ""
	}
}

// streamEvents reads every raw event of member from the stream.
func streamEvents(t *testing.T, js jetstream.JetStream, member string) []*eventsv1.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, eventbus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventbus.RawEvent(member, ">")},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.Envelope
	pending := info.NumPending
	for pending > 0 {
		batch, err := c.Fetch(int(min(pending, 500)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			env := &eventsv1.Envelope{}
			if err := proto.Unmarshal(m.Data(), env); err != nil {
				t.Fatal(err)
			}
			out = append(out, env)
		}
		if n == 0 {
			break
		}
		pending -= uint64(n)
	}
	return out
}

// change is one entity change the portal made.
type change struct {
	entity string // deal or task
	id     string
	at     time.Time
}

func (c change) String() string {
	return c.entity + " " + c.id + " at " + c.at.Format(time.RFC3339Nano)
}

// missing returns the changes with no raw event about the entity received
// after the change, and the number of events by "entity/source".
func missing(envs []*eventsv1.Envelope, changes []change) ([]change, map[string]int) {
	sources := map[string]int{}
	type key struct{ entity, id string }
	latest := map[key]time.Time{}
	for _, e := range envs {
		entity := ""
		switch {
		case strings.HasPrefix(e.GetEvent(), "ONCRMDEAL"):
			entity = "deal"
		case strings.HasPrefix(e.GetEvent(), "ONTASK"):
			entity = "task"
		default:
			continue
		}
		sources[entity+"/"+e.GetSource().String()]++
		k := key{entity, e.GetEntityId()}
		if at := e.GetReceivedAt().AsTime(); at.After(latest[k]) {
			latest[k] = at
		}
	}
	var out []change
	for _, c := range changes {
		if latest[key{c.entity, c.id}].Before(c.at) {
			out = append(out, c)
		}
	}
	return out, sources
}

const desiredDoc = `
defaults:
  mode: push
  events: [ONCRMDEALADD, ONCRMDEALUPDATE, ONTASKADD, ONTASKUPDATE]
  reconcile: [deal, task]
portals:
  - member_id: ` + memberB + `
    mode: offline
    reconcile: []
`

// TestNoLostChanges is the acceptance test: with 20% of pushes
// dropped, every changed deal and task reaches the raw stream (push,
// offline or reconcile) within two reconciliation periods.
func TestNoLostChanges(t *testing.T) {
	a, b := newFake(t, memberA), newFake(t, memberB)
	s := startStack(t, []*fakeportal.Portal{a, b}, desiredDoc)
	install(t, s, a)
	install(t, s, b)
	handler := s.ingress + "/bitrix24/events"
	eventually(t, 20*time.Second, "portal A bound", hasBindings(a, "ONCRMDEALUPDATE "+handler, "ONTASKUPDATE "+handler, "ONAPPUNINSTALL "+handler))
	eventually(t, 20*time.Second, "portal B bound", hasBindings(b, "ONCRMDEALUPDATE offline:", "ONTASKADD offline:", "ONOFFLINEEVENT "+handler))

	a.SetFaults(fakeportal.Faults{DropRate: 0.2})
	b.SetFaults(fakeportal.Faults{DropRate: 0.2})

	var changesA, changesB []change
	for i := range 25 {
		for _, p := range []struct {
			f   *fakeportal.Portal
			out *[]change
		}{{a, &changesA}, {b, &changesB}} {
			at := time.Now()
			id := p.f.CreateDeal(map[string]string{"TITLE": fmt.Sprintf("deal %d", i)}, true)
			p.f.UpdateDeal(id, map[string]string{"STAGE_ID": "WON"}, true)
			*p.out = append(*p.out, change{"deal", strconv.FormatInt(id, 10), at})
			if i%2 == 0 {
				at := time.Now()
				tid := p.f.CreateTask(fakeportal.Task{Title: fmt.Sprintf("task %d", i)}, true)
				p.f.UpdateTask(tid, func(t *fakeportal.Task) { t.Status = "3" }, true)
				*p.out = append(*p.out, change{"task", strconv.FormatInt(tid, 10), at})
			}
		}
	}
	// Changes whose pushes are all lost, whatever the dice say: only
	// reconciliation can find these.
	at := time.Now()
	silentDeal := a.CreateDeal(map[string]string{"TITLE": "silent deal"}, false)
	silentTask := a.CreateTask(fakeportal.Task{Title: "silent task"}, false)
	a.UpdateTask(silentTask, func(t *fakeportal.Task) { t.Status = "3" }, false)
	changesA = append(changesA, change{"deal", strconv.FormatInt(silentDeal, 10), at}, change{"task", strconv.FormatInt(silentTask, 10), at})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.Drain(ctx)
	_ = b.Drain(ctx)
	if a.Stats().PushesDropped == 0 {
		t.Fatal("no push was dropped: the test proves nothing")
	}

	for _, p := range []struct {
		name    string
		member  string
		changes []change
		source  string // every entity type must have events from it
	}{{"A (push + reconcile)", memberA, changesA, "SOURCE_RECONCILE"}, {"B (offline)", memberB, changesB, "SOURCE_OFFLINE"}} {
		var sources map[string]int
		eventually(t, 2*reconcileEvery+5*time.Second, "every change of portal "+p.name+" in the raw stream", func() (bool, string) {
			var lost []change
			lost, sources = missing(streamEvents(t, s.js, p.member), p.changes)
			return len(lost) == 0, fmt.Sprintf("%d of %d changes missing, e.g. %v; events by source %v", len(lost), len(p.changes), first(lost), sources)
		})
		for _, entity := range []string{"deal", "task"} {
			if sources[entity+"/"+p.source] == 0 {
				t.Errorf("portal %s: no %s %s event: %v", p.name, entity, p.source, sources)
			}
		}
		t.Logf("portal %s: %d changes, all recovered; events by source %v", p.name, len(p.changes), sources)
	}
	t.Logf("portal A pushes: %+v", a.Stats())
}

func first(cs []change) any {
	if len(cs) == 0 {
		return nil
	}
	return cs[0]
}

// TestForgedInstallStoresNothing posts installs that must be refused,
// made from genuine ONAPPINSTALL bodies of the fake: an unknown host, a bad
// token, no application token, another application, another portal's
// install. Nothing may be stored.
func TestForgedInstallStoresNothing(t *testing.T) {
	a, b := newFake(t, memberA), newFake(t, memberB)
	s := startStack(t, []*fakeportal.Portal{a, b}, desiredDoc)
	_, good := capturedInstall(t, a, app(""))
	// Our app genuinely installed on portal B, replayed under A's member id.
	_, onB := capturedInstall(t, b, app(""))
	_, otherApp := capturedInstall(t, a, fakeportal.App{ClientID: "local.other", ClientSecret: "x", Code: "local.other"})
	for name, body := range map[string][]byte{
		"unknown host":            tamper(t, good, map[string]string{"client_endpoint": "https://evil.example.com/rest/", "domain": "evil.example.com"}),
		"bad token":               tamper(t, good, map[string]string{"access_token": "forged-access-token"}),
		"no application token":    tamper(t, good, map[string]string{"application_token": ""}),
		"another app":             otherApp,
		"another portal's tokens": tamper(t, onB, map[string]string{"member_id": memberA}),
	} {
		eventually(t, 10*time.Second, name, func() (bool, string) {
			code := s.post(body)
			return code == http.StatusForbidden, fmt.Sprintf("answered %d", code)
		})
	}
	ctx := context.Background()
	for _, bucket := range []string{eventbus.BucketPortals, eventbus.BucketTokens} {
		kv, err := s.js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if keys, err := kv.ListKeys(ctx); err == nil {
			for k := range keys.Keys() {
				t.Errorf("bucket %s holds %q after forged installs", bucket, k)
			}
		}
	}
	if envs := streamEvents(t, s.js, memberA); len(envs) != 0 {
		t.Errorf("%d events published for a refused portal", len(envs))
	}
	if a.MethodCalls("event.bind") != 0 {
		t.Error("a refused install bound events")
	}
	// The real install still works afterwards. It comes from the portal's
	// own address: the forgeries above used up this test's address's budget
	// for installs of unknown portals, which is the ingress's per-source
	// bound doing its job.
	if code := s.postFrom("127.0.0.2", good); code != http.StatusOK {
		t.Fatalf("genuine install answered %d", code)
	}
}

// TestUninstallReinstallRebinds checks that an uninstall deactivates the
// portal and a reinstall (new tokens, no handlers left on the portal) binds
// everything again.
func TestUninstallReinstallRebinds(t *testing.T) {
	a := newFake(t, memberA)
	s := startStack(t, []*fakeportal.Portal{a}, desiredDoc)
	in := install(t, s, a)
	handler := s.ingress + "/bitrix24/events"
	want := []string{"ONCRMDEALADD " + handler, "ONCRMDEALUPDATE " + handler, "ONTASKADD " + handler,
		"ONTASKUPDATE " + handler, "ONAPPUNINSTALL " + handler, "ONAPPUPDATE " + handler, "ONAPPTEST " + handler}
	eventually(t, 20*time.Second, "bound after install", hasBindings(a, want...))
	eventually(t, 20*time.Second, "probe answered", func() (bool, string) {
		for _, e := range streamEvents(t, s.js, memberA) {
			if e.GetEvent() == "ONAPPTEST" {
				return true, ""
			}
		}
		return false, "no ONAPPTEST in the stream"
	})

	// Uninstall: the portal POSTs ONAPPUNINSTALL to the handler the service
	// bound for it, and drops every handler of the app (§1.2).
	if !a.UninstallApp(appID) {
		t.Fatal("the app was not installed")
	}
	uninstall, ok := lastPush(t, a, "ONAPPUNINSTALL")
	if !ok || uninstall.Status != http.StatusOK {
		t.Fatalf("uninstall push %+v", uninstall)
	}
	eventually(t, 10*time.Second, "portal deactivated", func() (bool, string) {
		p, ok := s.reg.Lookup(memberA)
		return ok && !p.Active, fmt.Sprintf("%+v", p)
	})
	if code := s.post(uninstall.Body); code != http.StatusForbidden {
		t.Errorf("a replayed uninstall of an uninstalled portal answered %d, want 403", code)
	}
	if left := a.Bindings(); len(left) != 0 {
		t.Fatalf("handlers left after uninstall: %v", left)
	}

	// Reinstall with fresh tokens: everything is bound again.
	in2 := install(t, s, a)
	if in2.AccessToken == in.AccessToken {
		t.Fatal("reinstall reused the tokens")
	}
	eventually(t, 20*time.Second, "bound after reinstall", hasBindings(a, want...))
	if p, _ := s.reg.Lookup(memberA); !p.Active || p.TokenSHA256 != portals.HashToken(in2.ApplicationToken) {
		t.Errorf("portal after reinstall = %+v", p)
	}

	// The old uninstall comes back, as an operator's replay and as a late
	// delivery (received now, raised an hour before the reinstall): neither
	// deactivates the reinstalled portal or deletes its credentials.
	var old *eventsv1.Envelope
	for _, e := range streamEvents(t, s.js, memberA) {
		if e.GetEvent() == "ONAPPUNINSTALL" {
			old = e
		}
	}
	if old == nil {
		t.Fatal("the uninstall is not in the stream")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	replayed := proto.Clone(old).(*eventsv1.Envelope)
	replayed.MessageId, replayed.ReplayOf, replayed.Source = old.GetMessageId()+"-r1", old.GetMessageId(), eventsv1.Source_SOURCE_REPLAY
	replayed.ReceivedAt = timestamppb.Now()
	late := proto.Clone(old).(*eventsv1.Envelope)
	late.MessageId, late.Source, late.ReceivedAt = old.GetMessageId()+"-late", eventsv1.Source_SOURCE_OFFLINE, timestamppb.Now()
	late.EventTs = timestamppb.New(time.Now().Add(-time.Hour))
	var lastSeq uint64
	for _, env := range []*eventsv1.Envelope{replayed, late} {
		msg, err := eventbus.RawEventMessage(env, nil)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: msg.Subject, Data: msg.Data, Header: msg.Header})
		if err != nil {
			t.Fatal(err)
		}
		lastSeq = ack.Sequence
	}
	eventually(t, 20*time.Second, "the old uninstalls handled", func() (bool, string) {
		c, err := s.js.Consumer(ctx, eventbus.StreamEvents, subscriptions.LifecycleDurable)
		if err != nil {
			return false, err.Error()
		}
		info, err := c.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.AckFloor.Stream >= lastSeq, fmt.Sprintf("ack floor %d, want %d", info.AckFloor.Stream, lastSeq)
	})
	if p, _ := s.reg.Lookup(memberA); !p.Active {
		t.Errorf("an old uninstall deactivated the reinstalled portal: %+v", p)
	}
	tokens, err := s.js.KeyValue(ctx, eventbus.BucketTokens)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Get(ctx, memberA); err != nil {
		t.Errorf("an old uninstall deleted the reinstalled portal's credentials: %v", err)
	}
}

// unbindAll removes every handler of the app, as the portal does on
// uninstall.
func unbindAll(t *testing.T, f *fakeportal.Portal, in fakeportal.Install) {
	t.Helper()
	store := &bitrix.MemoryTokenStore{}
	store.Put(in.MemberID, bitrix.Token{AccessToken: in.AccessToken, RefreshToken: in.RefreshToken,
		ClientEndpoint: in.ClientEndpoint, ServerEndpoint: in.ServerEndpoint, MemberID: in.MemberID})
	c, err := bitrix.New(bitrix.Config{OAuth: &bitrix.OAuthConfig{ClientID: appID, ClientSecret: "secret", MemberID: in.MemberID, Store: store}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rows, err := c.EventBindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if _, err := c.UnbindEvent(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := c.EventBindings(ctx); len(left) != 0 {
		t.Fatalf("still bound: %v", left)
	}
}

// TestOneLeaderAndControl runs two replicas: exactly one leads, the other
// takes over when it stops, and either answers the b24ctl control subjects.
func TestOneLeaderAndControl(t *testing.T) {
	a := newFake(t, memberA)
	s := startStack(t, []*fakeportal.Portal{a}, desiredDoc)
	second, stopSecond := s.startService(context.Background(), "instance-2")
	first := s.svc
	eventually(t, 10*time.Second, "a leader", func() (bool, string) {
		return first.Leading() != second.Leading(), fmt.Sprintf("first=%v second=%v", first.Leading(), second.Leading())
	})
	in := install(t, s, a)
	handler := s.ingress + "/bitrix24/events"
	eventually(t, 20*time.Second, "bound", hasBindings(a, "ONCRMDEALUPDATE "+handler))

	request := func(subject string) eventbus.SubscriptionsReply {
		t.Helper()
		req, _ := json.Marshal(eventbus.SubscriptionsRequest{MemberID: memberA})
		msg, err := s.nc.Request(subject, req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep eventbus.SubscriptionsReply
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Error != "" || len(rep.Portals) != 1 || rep.Portals[0].Error != "" {
			t.Fatalf("%s: %+v", subject, rep)
		}
		return rep
	}
	if rep := request(eventbus.ControlSubscriptionsDiff); len(rep.Portals[0].Bind)+len(rep.Portals[0].Unbind) != 0 {
		t.Errorf("diff after install: %+v", rep.Portals[0])
	}
	// Handlers removed behind the service's back come back with apply (or
	// the next sync tick, whichever is first).
	unbindAll(t, a, in)
	if rep := request(eventbus.ControlSubscriptionsApply); len(rep.Portals[0].Failed) != 0 {
		t.Errorf("apply: %+v", rep.Portals[0])
	}
	eventually(t, 10*time.Second, "re-bound", hasBindings(a, "ONCRMDEALUPDATE "+handler, "ONAPPUNINSTALL "+handler))

	// The leader stops gracefully: the other replica takes over at once
	// (well before the 2s lease TTL would expire, but no timing is asserted).
	if first.Leading() {
		s.stopFirst()
		eventually(t, 10*time.Second, "takeover", func() (bool, string) { return second.Leading(), "" })
	} else {
		stopSecond()
		eventually(t, 10*time.Second, "takeover", func() (bool, string) { return first.Leading(), "" })
	}
}

// TestForgedInstallFloodKeepsKnownPortalsIn: forged installs whose
// verification hangs (a slow, allow-listed portal) fill every slot for
// unknown portals; an authenticated reinstall of a known portal still has
// slots of its own and is accepted, while the flood is answered "busy".
func TestForgedInstallFloodKeepsKnownPortalsIn(t *testing.T) {
	a := newFake(t, memberA)
	slow := newFake(t, memberB)
	s := startStack(t, []*fakeportal.Portal{a, slow}, desiredDoc)
	in := install(t, s, a)
	_, onSlow := capturedInstall(t, slow, app(""))
	slow.SetFaults(fakeportal.Faults{Latency: 3 * time.Second})

	ctx, stop := context.WithCancel(context.Background())
	var busy atomic.Int32
	var wg sync.WaitGroup
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				forged := tamper(t, onSlow, map[string]string{"member_id": fmt.Sprintf("f%03d%028d", w, i)})
				req, _ := json.Marshal(eventbus.InstallRequest{ContentType: "application/x-www-form-urlencoded", Body: forged})
				m, err := s.nc.RequestWithContext(ctx, eventbus.ControlInstall, req)
				if err != nil {
					continue
				}
				var rep eventbus.InstallReply
				if json.Unmarshal(m.Data, &rep) == nil && rep.Busy {
					busy.Add(1)
				}
			}
		}()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	eventually(t, 10*time.Second, "the flood fills the slots", func() (bool, string) {
		return busy.Load() > 0, "no busy answer yet"
	})

	tokens, err := s.js.KeyValue(context.Background(), eventbus.BucketTokens)
	if err != nil {
		t.Fatal(err)
	}
	before, err := tokens.Get(context.Background(), memberA)
	if err != nil {
		t.Fatal(err)
	}

	// The portal's admin reinstalls (same application token, fresh OAuth
	// tokens): the verifier verifies it while the flood goes on, and stores
	// its new tokens (accepting it on its application token alone would
	// keep the old, revoked ones).
	reinstall := app(s.ingress + "/bitrix24/events")
	reinstall.ApplicationToken = in.ApplicationToken
	in2 := a.InstallApp(reinstall)
	if d, ok := lastPush(t, a, "ONAPPINSTALL"); !ok || d.Status != http.StatusOK {
		t.Fatalf("reinstall during the flood: %+v", d)
	}
	if busy.Load() == 0 {
		t.Fatal("the flood was never answered busy")
	}
	after, err := tokens.Get(context.Background(), memberA)
	if err != nil || after.Revision() <= before.Revision() || in2.AccessToken == in.AccessToken {
		t.Fatalf("the reinstall's tokens were not stored (revision %d, was %d): %v", after.Revision(), before.Revision(), err)
	}
}
