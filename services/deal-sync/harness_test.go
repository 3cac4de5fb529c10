package dealsync_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/testwait"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// env is one test's world: embedded JetStream, a fresh database, a fake
// portal whose pushes reach the raw-event stream through a stand-in
// ingress, and REST clients on the portal's incoming webhook.
type env struct {
	t       testing.TB
	srv     *natstest.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	pool    *pgxpool.Pool
	portal  *fakeportal.Portal
	client  *bitrix.Client
	ingress *consumertest.Ingress
	member  string

	mu       sync.Mutex
	changes  []*eventsv1.DomainChange
	outcomes []*eventsv1.Outcome
	dead     []*nats.Msg
}

func newEnv(t testing.TB, pcfg fakeportal.Config) *env {
	t.Helper()
	e := &env{t: t}
	e.pool = pgtest.NewPool(t)
	e.srv = natstest.Start(t)
	e.nc, e.js = e.srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), e.js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := fakeportal.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	e.portal, e.member = p, p.MemberID()
	e.client = e.newClient(bitrix.Config{})
	e.ingress = consumertest.NewIngress(t, e.js)
	p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: e.ingress.URL(),
		Events: []string{"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE", "ONCRMDEALMOVETOCATEGORY"}})
	e.collect(eventbus.ChangesPrefix+".deal.>", func(m *nats.Msg) {
		dc := &eventsv1.DomainChange{}
		if proto.Unmarshal(m.Data, dc) == nil {
			e.changes = append(e.changes, dc)
		}
	})
	e.collect(eventbus.OutcomesPrefix+".>", func(m *nats.Msg) {
		o := &eventsv1.Outcome{}
		if proto.Unmarshal(m.Data, o) == nil {
			e.outcomes = append(e.outcomes, o)
		}
	})
	e.collect(eventbus.DeadPrefix+".>", func(m *nats.Msg) { e.dead = append(e.dead, m) })
	return e
}

// newClient returns a REST client on a fresh incoming webhook of the portal.
func (e *env) newClient(cfg bitrix.Config) *bitrix.Client {
	cfg.WebhookURL = e.portal.AddWebhook(1, fmt.Sprintf("code%d", time.Now().UnixNano()))
	cfg.MemberID = e.portal.MemberID()
	c, err := bitrix.New(cfg, bitrix.WithHTTPClient(e.portal.Client()), bitrix.WithLogger(quiet()))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) collect(subject string, f func(*nats.Msg)) {
	if _, err := e.nc.Subscribe(subject, func(m *nats.Msg) {
		e.mu.Lock()
		defer e.mu.Unlock()
		f(m)
	}); err != nil {
		e.t.Fatal(err)
	}
	_ = e.nc.Flush()
}

// fastConfig keeps production behaviour with test-sized delays.
func fastConfig() dealsync.Config {
	cfg := dealsync.DefaultConfig()
	cfg.OutboxInterval = 50 * time.Millisecond
	cfg.DrainTimeout = 5 * time.Second
	cfg.Consumer.Backoff = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	cfg.Consumer.AckWait = 2 * time.Second
	cfg.Consumer.BatchWindow = 100 * time.Millisecond
	cfg.Commands.Backoff = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	cfg.Commands.AckWait = 2 * time.Second
	return cfg
}

// start runs a deal-sync service on its own NATS connection until the test
// ends or stop is called.
func (e *env) start(cfg dealsync.Config, client *bitrix.Client) (stop func()) {
	e.t.Helper()
	return e.startWith(cfg, bitrixport.Static{Client: client})
}

// startWith is start with the service's own source of clients, e.g. the
// one its command builds (bitrixport.SharedClients).
func (e *env) startWith(cfg dealsync.Config, clients bitrixport.Clients) (stop func()) {
	e.t.Helper()
	// As svcmain does before Start.
	if err := store.Migrate(context.Background(), e.pool); err != nil {
		e.t.Fatal(err)
	}
	nc := e.srv.Connect(e.t)
	svc, err := dealsync.New(cfg, dealsync.Deps{NC: nc, Pool: e.pool, Logger: quiet(), Portals: clients})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	e.eventually("service ready", func() bool { return svc.Ready(context.Background()) == nil })
	return stop
}

// eventually polls cond; the timeout guards against hangs, it is not a
// speed assertion.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	testwait.Within(e.t, 5*time.Minute, what, cond)
}

// idle waits until the portal has pushed everything, every consumer has
// settled every message and the outbox is empty.
//
// The checks run one after the other, so work can start and finish between
// two of them (a consumer fetches and writes after the portal was
// drained): a pass counts only when nothing moved meanwhile, neither the
// portal's requests nor the last sequence of any stream the service reads
// or writes. A test that asserts that something did not happen (a second
// write) checks after idle, not after a sleep.
func (e *env) idle() {
	e.t.Helper()
	ctx := context.Background()
	e.eventually("quiet system", func() bool {
		before, ok := e.activity(ctx)
		if !ok || e.portal.Drain(ctx) != nil {
			return false
		}
		for _, c := range []struct{ stream, name string }{
			{eventbus.StreamEvents, "deal-sync"}, {eventbus.StreamCommands, "deal-sync-commands"},
		} {
			cons, err := e.js.Consumer(ctx, c.stream, c.name)
			if err != nil {
				return false
			}
			info, err := cons.Info(ctx)
			if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
				return false
			}
		}
		var n int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM deal_sync.outbox WHERE published_at IS NULL`).Scan(&n); err != nil || n != 0 {
			return false
		}
		after, ok := e.activity(ctx)
		return ok && after == before
	})
	// Every change the stream stored has reached the test's core-NATS
	// subscription too (a re-published duplicate only adds copies).
	e.eventually("every stored change received", func() bool {
		st, err := e.js.Stream(ctx, eventbus.StreamChanges)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		if err != nil {
			return false
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		return uint64(len(e.changes)) >= info.State.Msgs
	})
}

// activity is what moves while deal-sync works: the portal's request count
// and the last sequence of each stream it reads or writes.
func (e *env) activity(ctx context.Context) (string, bool) {
	out := fmt.Sprint(e.portal.Stats().Requests)
	for _, name := range []string{eventbus.StreamEvents, eventbus.StreamCommands, eventbus.StreamChanges, eventbus.StreamOutcomes} {
		st, err := e.js.Stream(ctx, name)
		if err != nil {
			return "", false
		}
		info, err := st.Info(ctx)
		if err != nil {
			return "", false
		}
		out += fmt.Sprintf(" %s=%d", name, info.State.LastSeq)
	}
	return out, true
}

func (e *env) changesFor(id int64) []*eventsv1.DomainChange {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*eventsv1.DomainChange
	for _, c := range e.changes {
		if c.EntityId == fmt.Sprint(id) {
			out = append(out, c)
		}
	}
	return out
}

func (e *env) outcomesWith(status eventsv1.OutcomeStatus, errText string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, o := range e.outcomes {
		if o.Status == status && (errText == "" || o.Error == errText) {
			n++
		}
	}
	return n
}

type mirrorRow struct {
	hash    string
	deleted bool
	title   string
	fields  map[string]any
}

func (e *env) mirror(id int64) (mirrorRow, bool) { return e.mirrorOf(e.member, id) }

// mirrorOf reads the mirror of a deal of portal member.
func (e *env) mirrorOf(member string, id int64) (mirrorRow, bool) {
	var r mirrorRow
	err := e.pool.QueryRow(context.Background(), `SELECT snapshot_hash, deleted, coalesce(title, ''), fields
		FROM deal_sync.deals WHERE member_id = $1 AND deal_id = $2`, member, id).Scan(&r.hash, &r.deleted, &r.title, &r.fields)
	return r, err == nil
}

func (e *env) publishCommand(cmd *eventsv1.Command) {
	e.t.Helper()
	data, _ := proto.Marshal(cmd)
	if _, err := e.js.Publish(context.Background(), eventbus.Command("deal", cmd.MemberId, "update"), data,
		jetstream.WithMsgID(cmd.Id)); err != nil {
		e.t.Fatal(err)
	}
}

func quiet() *slog.Logger {
	if os.Getenv("B24HUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// publishRaw publishes a raw deal event as the ingress would, with msgID.
func (e *env) publishRaw(id int64, event, msgID string) {
	e.t.Helper()
	e.publishRawOf(e.member, id, event, msgID)
}

// publishRawOf is publishRaw for a deal of portal member.
func (e *env) publishRawOf(member string, id int64, event, msgID string) {
	e.t.Helper()
	env := &eventsv1.Envelope{MessageId: msgID, MemberId: member, Event: event, EntityId: fmt.Sprint(id),
		Source: eventsv1.Source_SOURCE_PUSH}
	data, _ := proto.Marshal(env)
	if _, err := e.js.Publish(context.Background(), eventbus.RawEvent(member, event), data, jetstream.WithMsgID(msgID)); err != nil {
		e.t.Fatal(err)
	}
}

// publishCommandWithMsgID publishes cmd under another Nats-Msg-Id, as a
// sender that retries after the stream's de-duplication window would.
func (e *env) publishCommandWithMsgID(cmd *eventsv1.Command, msgID string) {
	e.t.Helper()
	data, _ := proto.Marshal(cmd)
	if _, err := e.js.Publish(context.Background(), eventbus.Command("deal", cmd.MemberId, "update"), data,
		jetstream.WithMsgID(msgID)); err != nil {
		e.t.Fatal(err)
	}
}

// bitrixConfigNoRetry makes the client fail fast, so consumer-level retries
// are what the test sees.
func bitrixConfigNoRetry() bitrix.Config {
	return bitrix.Config{MaxRetries: -1, RequestTimeout: 5 * time.Second}
}
