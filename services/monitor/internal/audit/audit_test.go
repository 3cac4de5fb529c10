package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/services/monitor/internal/alert"
	"github.com/b24hub/b24hub/services/monitor/internal/audit"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/b24hub/b24hub/services/monitor/internal/schema"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

type chain struct {
	t     *testing.T
	js    jetstream.JetStream
	store *ledger.Store
	pool  *pgxpool.Pool
	cons  jetstream.Consumer
	start time.Time
}

func newChain(t *testing.T) *chain {
	t.Helper()
	ctx := context.Background()
	_, js := natstest.Start(t).JetStream(t)
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	pool := pgtest.NewPool(t)
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	store := ledger.NewStore(pool)
	if _, err := store.MaintainPartitions(ctx, time.Now(), 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, eventbus.StreamEvents, jetstream.ConsumerConfig{
		Durable: "deal-sync", FilterSubjects: eventbus.RawEventFilter("ONCRMDEALUPDATE"), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	// A consumer of another event type must not be expected to see deals.
	if _, err := js.CreateOrUpdateConsumer(ctx, eventbus.StreamEvents, jetstream.ConsumerConfig{
		Durable: "task-sync", FilterSubjects: eventbus.RawEventFilter("ONTASKADD"), AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	return &chain{t: t, js: js, store: store, pool: pool, cons: cons, start: time.Now().Add(-time.Second)}
}

// publish puts one deal event on the stream and, when record is set,
// records it in the ledger as the monitor's ingest would.
func (c *chain) publish(id string, record bool) uint64 {
	c.t.Helper()
	ctx := context.Background()
	ack, err := c.js.Publish(ctx, eventbus.RawEvent("m1", "ONCRMDEALUPDATE"), []byte(id), jetstream.WithMsgID(id))
	if err != nil {
		c.t.Fatal(err)
	}
	if record {
		if _, err := c.store.WriteEvents(ctx, []ledger.Event{{ID: id, Portal: "m1", EventType: "ONCRMDEALUPDATE",
			Source: "push", ReceivedAt: time.Now().UTC(), StreamSeq: ack.Sequence}}); err != nil {
			c.t.Fatal(err)
		}
	}
	return ack.Sequence
}

// consume has deal-sync take n messages, ack them and record status.
func (c *chain) consume(n int, status string) {
	c.t.Helper()
	ctx := context.Background()
	batch, err := c.cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		c.t.Fatal(err)
	}
	var attempts []ledger.Attempt
	for m := range batch.Messages() {
		id := m.Headers().Get("Nats-Msg-Id")
		attempts = append(attempts, ledger.Attempt{EventID: id, Consumer: "deal-sync", Portal: "m1", EventType: "ONCRMDEALUPDATE",
			Status: status, Attempt: 1, Error: map[bool]string{true: "portal answered 503"}[status == ledger.StatusError], At: time.Now()})
		if status != ledger.StatusError {
			if err := m.DoubleAck(ctx); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	if len(attempts) != n {
		c.t.Fatalf("fetched %d, want %d", len(attempts), n)
	}
	if err := c.store.ApplyAttempts(ctx, attempts); err != nil {
		c.t.Fatal(err)
	}
}

func (c *chain) audit(now time.Time) audit.Report {
	c.t.Helper()
	a := audit.New(audit.Config{JS: c.js, Ledger: c.store, Self: "monitor-ledger", Now: func() time.Time { return now }})
	rep, err := a.Run(context.Background(), audit.Options{From: c.start, To: time.Now().Add(time.Second), Grace: time.Minute})
	if err != nil {
		c.t.Fatal(err)
	}
	return rep
}

func TestHealthyChainReportsNothingMissing(t *testing.T) {
	c := newChain(t)
	for _, id := range []string{"e1", "e2", "e3"} {
		c.publish(id, true)
	}
	c.consume(3, ledger.StatusDone)
	rep := c.audit(time.Now().Add(time.Hour))
	if !rep.OK || len(rep.Findings) != 0 {
		t.Fatalf("healthy chain: findings %+v", rep.Findings)
	}
	if rep.StreamMessages != 3 || rep.LedgerEvents != 3 || len(rep.Consumers) != 2 {
		t.Fatalf("report = %+v", rep)
	}
}

func TestAuditNamesEveryBrokenLink(t *testing.T) {
	c := newChain(t)
	ctx := context.Background()
	c.publish("done", true)
	c.publish("no-outcome", true)
	c.consume(2, ledger.StatusDone)
	// The outcome of "no-outcome" is lost: its delivery row is deleted.
	if _, err := c.pool.Exec(ctx, `DELETE FROM monitor.deliveries WHERE event_id = 'no-outcome'`); err != nil {
		t.Fatal(err)
	}
	c.publish("retry", true)
	c.consume(1, ledger.StatusError) // fetched, not acked: retried later
	c.publish("unseen-by-monitor", false)
	c.publish("never-delivered", true)
	gone := c.publish("purged", true)
	c.publish("after-gap", true)
	stream, err := c.js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(ctx, gone); err != nil {
		t.Fatal(err)
	}

	// Within the grace period only the failures that need no waiting show.
	early := c.audit(time.Now())
	want := map[string]string{"no-outcome": audit.ReasonOutcomeMissing, "retry": audit.ReasonRetrying,
		"unseen-by-monitor": audit.ReasonMissingFromLedger, "": audit.ReasonStreamGap}
	check(t, "early", early, want)

	late := c.audit(time.Now().Add(time.Hour))
	want["never-delivered"] = audit.ReasonNeverDelivered
	want["purged"] = audit.ReasonNeverDelivered // the ledger has it; deal-sync never will
	want["after-gap"] = audit.ReasonNeverDelivered
	check(t, "late", late, want)
}

func TestUnackedDeliveryIsAckFloorBehind(t *testing.T) {
	c := newChain(t)
	c.publish("held", true)
	batch, err := c.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() { // taken, never acked, no outcome yet
	}
	check(t, "held", c.audit(time.Now().Add(time.Hour)), map[string]string{"held": audit.ReasonAckFloorBehind})
}

func check(t *testing.T, name string, rep audit.Report, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, f := range rep.Findings {
		if f.EventID != "" && f.Reason != audit.ReasonMissingFromLedger && f.Consumer != "deal-sync" {
			t.Errorf("%s: finding at %q, only deal-sync should see deals: %+v", name, f.Consumer, f)
		}
		got[f.EventID] = f.Reason
		if f.Detail == "" {
			t.Errorf("%s: finding without detail: %+v", name, f)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: findings %+v, want %v", name, rep.Findings, want)
	}
	for id, reason := range want {
		if got[id] != reason {
			t.Errorf("%s: %q reason %q, want %q (all: %+v)", name, id, got[id], reason, rep.Findings)
		}
	}
	if rep.OK {
		t.Errorf("%s: report OK with findings", name)
	}
}

// TestUnfinishedAges: a consumer's oldest unfinished event is the first
// message after its ack floor, or an older delivery the ledger still has
// as retrying; a consumer with nothing left reports none.
func TestUnfinishedAges(t *testing.T) {
	c := newChain(t)
	ctx := context.Background()
	a := audit.New(audit.Config{JS: c.js, Ledger: c.store, Self: "monitor-ledger"})
	age := func(consumer string) alert.UnfinishedAge {
		t.Helper()
		us, err := a.UnfinishedAges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			if u.Consumer == consumer && u.Stream == eventbus.StreamEvents {
				return u
			}
		}
		t.Fatalf("no age of %s in %+v", consumer, us)
		return alert.UnfinishedAge{}
	}
	if u := age("deal-sync"); !u.Oldest.IsZero() || u.MaxAge != 7*24*time.Hour {
		t.Fatalf("idle consumer: %+v", u)
	}
	stream, err := c.js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	stored := func(seq uint64) time.Time {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		return m.Time
	}
	first := c.publish("a1", true)
	second := c.publish("a2", true)
	if u := age("deal-sync"); !u.Oldest.Equal(stored(first)) {
		t.Fatalf("two unconsumed: oldest %v, want %v", u.Oldest, stored(first))
	}
	if u := age("task-sync"); !u.Oldest.IsZero() {
		t.Fatalf("task-sync sees no deals, oldest %v", u.Oldest)
	}
	c.consume(1, ledger.StatusDone)
	if u := age("deal-sync"); !u.Oldest.Equal(stored(second)) {
		t.Fatalf("one consumed: oldest %v, want %v", u.Oldest, stored(second))
	}
	c.consume(1, ledger.StatusDone)
	if u := age("deal-sync"); !u.Oldest.IsZero() {
		t.Fatalf("all consumed: oldest %v", u.Oldest)
	}
	// Nothing left in the stream, but the ledger has a delivery still retried.
	retried := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	if err := c.store.ApplyAttempts(ctx, []ledger.Attempt{{EventID: "replayed", Consumer: "deal-sync", Portal: "m1",
		Status: ledger.StatusError, Attempt: 2, Error: "503", At: retried}}); err != nil {
		t.Fatal(err)
	}
	if u := age("deal-sync"); !u.Oldest.Equal(retried) {
		t.Fatalf("a retrying delivery is unfinished: %+v, want %v", u, retried)
	}
}
