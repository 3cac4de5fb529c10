package tasks_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/testwait"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/tasks"
	"github.com/b24hub/b24hub/services/tasks/internal/consumer/taskevents"
	"github.com/b24hub/b24hub/services/tasks/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

type env struct {
	t      *testing.T
	srv    *natstest.Server
	js     jetstream.JetStream
	pool   *pgxpool.Pool
	portal *fakeportal.Portal
	client *bitrix.Client

	mu      sync.Mutex
	changes []*eventsv1.DomainChange
}

func newEnv(t *testing.T, pcfg fakeportal.Config) *env {
	e := &env{t: t, pool: pgtest.NewPool(t), srv: natstest.Start(t)}
	var nc *nats.Conn
	nc, e.js = e.srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), e.js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := fakeportal.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	e.portal = p
	e.client, err = bitrix.New(bitrix.Config{WebhookURL: p.AddWebhook(1, "tel"), MemberID: p.MemberID()},
		bitrix.WithHTTPClient(p.Client()), bitrix.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	in := consumertest.NewIngress(t, e.js)
	p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: in.URL(), Events: []string{"ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE", "ONTASKCOMMENTADD"}})
	if _, err := nc.Subscribe("b24.changes.task.>", func(m *nats.Msg) {
		dc := &eventsv1.DomainChange{}
		if proto.Unmarshal(m.Data, dc) == nil {
			e.mu.Lock()
			e.changes = append(e.changes, dc)
			e.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	// The subscription is in place at the server before the service can
	// publish: a change published first would be missed for good.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) start(cfg tasks.Config) {
	// As svcmain does before Start.
	if err := store.Migrate(context.Background(), e.pool); err != nil {
		e.t.Fatal(err)
	}
	svc, err := tasks.New(cfg, tasks.Deps{NC: e.srv.Connect(e.t), Pool: e.pool,
		Logger: slog.New(slog.DiscardHandler), Portals: bitrixport.Static{Client: e.client}})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
}

func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	testwait.For(e.t, what, cond)
}

func fastConfig() tasks.Config {
	cfg := tasks.DefaultConfig()
	cfg.OutboxInterval, cfg.DrainTimeout = 50*time.Millisecond, 5*time.Second
	cfg.Consumer.Backoff = []time.Duration{50 * time.Millisecond}
	cfg.Consumer.AckWait = 2 * time.Second
	cfg.Consumer.BatchWindow = 50 * time.Millisecond
	return cfg
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

func diff(dc *eventsv1.DomainChange) map[string]string {
	out := map[string]string{}
	for _, c := range dc.Changes {
		out[c.Field] = c.OldJson + "->" + c.NewJson
	}
	return out
}

func TestTasksAndChecklistsAreMirroredWithDiffs(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	e.start(fastConfig())
	id := e.portal.CreateTask(fakeportal.Task{Title: "Install boiler"}, false)
	item := e.portal.AddChecklistItem(id, 0, "Buy parts", false)
	e.portal.UpdateTask(id, func(*fakeportal.Task) {}, true) // ONTASKUPDATE as the first event we see
	e.eventually("created", func() bool { return len(e.changesFor(id)) == 1 })
	if c := e.changesFor(id)[0]; c.Kind != eventsv1.ChangeKind_CHANGE_KIND_CREATED || diff(c)[fmt.Sprint("checklist.", item)] == "" {
		t.Errorf("created change %v", diff(c))
	}

	// A checklist edit fires no event of its own; the next task event (here a
	// comment from the new task card: ID=0, TASK_ID, MESSAGE_ID) picks it up.
	e.portal.AddChecklistItem(id, 0, "Fit it", false)
	e.portal.Fire("ONTASKCOMMENTADD", []b24event.Field{
		{Key: "[FIELDS_AFTER][ID]", Value: "0"}, {Key: "[FIELDS_AFTER][TASK_ID]", Value: fmt.Sprint(id)},
		{Key: "[FIELDS_AFTER][MESSAGE_ID]", Value: "9001"}}, 1)
	e.eventually("checklist change", func() bool { return len(e.changesFor(id)) == 2 })
	d := diff(e.changesFor(id)[1])
	if len(d) != 1 {
		t.Errorf("diff after adding a checklist item: %v", d)
	}
	for f, v := range d {
		if !strings.HasPrefix(f, "checklist.") || !strings.Contains(v, "Fit it") {
			t.Errorf("diff %s = %s", f, v)
		}
	}

	// Events are de-duplicated by (portal, event, data, ts in seconds): a
	// second ONTASKUPDATE of the same task within the same second would be
	// taken for a duplicate of the first (see the report on b24event.MessageID).
	time.Sleep(1100 * time.Millisecond)
	e.portal.UpdateTask(id, func(t *fakeportal.Task) { t.Title = "Install the boiler" }, true)
	e.eventually("title change", func() bool { return len(e.changesFor(id)) == 3 })
	if d := diff(e.changesFor(id)[2]); d["title"] != `"Install boiler"->"Install the boiler"` {
		t.Errorf("title diff %v", d)
	}

	e.portal.DeleteTask(id, true)
	e.eventually("deleted", func() bool {
		cs := e.changesFor(id)
		return len(cs) == 4 && cs[3].Kind == eventsv1.ChangeKind_CHANGE_KIND_DELETED
	})
}

func TestConformance(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	if err := store.Migrate(context.Background(), e.pool); err != nil {
		t.Fatal(err)
	}
	a := e.portal.CreateTask(fakeportal.Task{Title: "A"}, false)
	e.portal.AddChecklistItem(a, 0, "one", true)
	b := e.portal.CreateTask(fakeportal.Task{Title: "B"}, false)
	h := taskevents.New(bitrixport.Static{Client: e.client}, store.New(e.pool), nil)
	consumertest.Run(t, consumertest.Case[*eventsv1.Envelope]{
		Spec: taskevents.Spec(), Decode: consumer.DecodeEnvelope, BatchHandler: h, Server: e.srv,
		Valid: []consumertest.Fixture{
			consumertest.EnvelopeFixture(&eventsv1.Envelope{MessageId: "t-a", MemberId: e.portal.MemberID(), Event: "ONTASKADD", EntityId: fmt.Sprint(a)}),
			consumertest.EnvelopeFixture(&eventsv1.Envelope{MessageId: "t-b", MemberId: e.portal.MemberID(), Event: "ONTASKCOMMENTADD", EntityId: fmt.Sprint(b)}),
		},
		Effects: func(t testing.TB) string {
			var n, out int
			var hashes string
			_ = e.pool.QueryRow(context.Background(), `SELECT count(*), coalesce(string_agg(snapshot_hash, ',' ORDER BY task_id), '') FROM tasks.tasks`).Scan(&n, &hashes)
			_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM tasks.outbox`).Scan(&out)
			return fmt.Sprint(n, hashes, out)
		},
	})
}

func TestConfigFromEnv(t *testing.T) {
	cfg, err := tasks.ConfigFromEnv(func(k string) string {
		return map[string]string{"B24HUB_TASKS_BATCH_WINDOW": "1s", "B24HUB_TASKS_MAX_DELIVER": "6"}[k]
	})
	if err != nil || cfg.Consumer.BatchWindow != time.Second || cfg.Consumer.MaxDeliver != 6 {
		t.Errorf("%+v %v", cfg, err)
	}
}
