package outbox_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/nats-io/nats.go/jetstream"
)

// legacyTable is the outbox table services used to create in their own
// first migration, before the package owned it.
const legacyTable = `CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    msg_id       text NOT NULL,
    subject      text NOT NULL,
    data         bytea NOT NULL,
    header       jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;`

// handover is a service's hand-over migration: the line each service that
// had its own outbox table added as a migration of its own.
const handover = "ALTER TABLE IF EXISTS outbox RENAME TO outbox_handover;"

// TestMigrateTakesOverALegacyTable upgrades a database whose service
// created its own outbox and still has unpublished rows in it: after the
// service's hand-over migration and Table.Migrate, the rows are in the
// package's table, the unpublished ones are published in their order and
// the published ones are not published again.
func TestMigrateTakesOverALegacyTable(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	old := fstest.MapFS{"001_init.sql": {Data: []byte("CREATE TABLE things (id int);\n" + legacyTable)}}
	if err := postgres.Migrate(ctx, pool, "svc", old); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, pool, `INSERT INTO svc.outbox (msg_id, subject, data, published_at) VALUES
		('done-1', 'b24.changes.deal.m1.1', 'a', now()),
		('wait-1', 'b24.changes.deal.m1.2', 'b', NULL),
		('wait-2', 'b24.changes.deal.m1.3', 'c', NULL)`)

	// The new release: the service's hand-over migration, then the package's.
	upgraded := fstest.MapFS{
		"001_init.sql":            old["001_init.sql"],
		"002_outbox_handover.sql": {Data: []byte(handover)},
	}
	table := outbox.In("svc")
	for range 2 { // a second run changes nothing
		if err := postgres.Migrate(ctx, pool, "svc", upgraded); err != nil {
			t.Fatal(err)
		}
		if err := table.Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	var legacyLeft bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('svc.outbox_handover') IS NOT NULL").Scan(&legacyLeft); err != nil || legacyLeft {
		t.Fatalf("hand-over table left behind: %v %v", legacyLeft, err)
	}

	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	relay := outbox.NewRelay(table, pool, eventbus.NewPublisher(js), slog.New(slog.DiscardHandler))
	if n, err := relay.Pending(ctx); n != 2 || err != nil {
		t.Fatalf("pending after upgrade: %d %v, want 2", n, err)
	}
	if n, err := relay.Flush(ctx); n != 2 || err != nil {
		t.Fatalf("flush: %d %v", n, err)
	}
	cons, err := js.OrderedConsumer(ctx, eventbus.StreamChanges, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 2 {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Headers().Get(eventbus.HeaderMsgID))
	}
	// A flush publishes its rows concurrently: the set, not the order.
	slices.Sort(got)
	if !slices.Equal(got, []string{"wait-1", "wait-2"}) {
		t.Errorf("published %v, want wait-1 and wait-2", got)
	}
	var order []string
	if err := pool.QueryRow(ctx, "SELECT array_agg(msg_id ORDER BY seq) FROM svc.outbox").Scan(&order); err != nil ||
		!slices.Equal(order, []string{"done-1", "wait-1", "wait-2"}) {
		t.Errorf("rows after upgrade, by seq: %v %v", order, err)
	}
	// New rows go after the moved ones.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := table.Add(ctx, tx, nil, outbox.Message{MsgID: "new-1", Subject: "b24.changes.deal.m1.4", Data: []byte("d")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := relay.Flush(ctx); n != 1 || err != nil {
		t.Errorf("flush after upgrade: %d %v", n, err)
	}
}

// TestMigrateFreshSchema: on a new database the package creates the table
// on its own, and the hand-over migration is a no-op.
func TestMigrateFreshSchema(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	fresh := fstest.MapFS{
		"001_init.sql":            {Data: []byte("CREATE TABLE things (id int);")},
		"002_outbox_handover.sql": {Data: []byte(handover)},
	}
	if err := postgres.Migrate(ctx, pool, "svc", fresh); err != nil {
		t.Fatal(err)
	}
	table := outbox.In("svc")
	if err := table.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	relay := outbox.NewRelay(table, pool, nil, slog.New(slog.DiscardHandler))
	if n, err := relay.Pending(ctx); n != 0 || err != nil {
		t.Errorf("pending on a fresh table: %d %v", n, err)
	}
}
