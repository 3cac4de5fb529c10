package outbox_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// migrated is a fresh database with schema svc's outbox table.
func migrated(t *testing.T) (*pgxpool.Pool, outbox.Table) {
	t.Helper()
	pool := pgtest.NewPool(t)
	table := outbox.In("svc")
	if err := table.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool, table
}

// relayTo starts a broker with the platform's streams and returns a relay
// of table publishing to it.
func relayTo(t *testing.T, pool *pgxpool.Pool, table outbox.Table) (*outbox.Relay, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return outbox.NewRelay(table, pool, eventbus.NewPublisher(js), slog.New(slog.DiscardHandler)), js
}

func TestOutboxPublishesOnceAfterCommit(t *testing.T) {
	ctx := context.Background()
	pool, table := migrated(t)
	relay, js := relayTo(t, pool, table)

	tp := sdktrace.NewTracerProvider()
	tctx, span := tp.Tracer("t").Start(ctx, "handler")
	defer span.End()
	add := func(commit bool) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = table.Add(tctx, tx, nil, outbox.Message{MsgID: "chg-1", Subject: eventbus.Change("deal", "m1", "1"), Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	add(false) // rolled back: nothing to publish
	if n, err := relay.Flush(ctx); n != 0 || err != nil {
		t.Fatalf("flush after rollback: %d %v", n, err)
	}
	add(true)
	add(true) // the same change stored twice (a redelivery) is published once
	if n, err := relay.Flush(ctx); n != 2 || err != nil {
		t.Fatalf("flush: %d %v", n, err)
	}
	if n, _ := relay.Pending(ctx); n != 0 {
		t.Errorf("pending %d", n)
	}
	st, err := js.Stream(ctx, eventbus.StreamChanges)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1 {
		t.Errorf("%d messages in %s, want 1", info.State.Msgs, eventbus.StreamChanges)
	}
	msg, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := eventbus.Propagator().Extract(ctx, eventbus.HeaderCarrier(msg.Header))
	if trace.SpanContextFromContext(got).TraceID() != span.SpanContext().TraceID() {
		t.Error("the published change lost the handler's trace")
	}
}

// TestQueueManyKeepsTheirOrder: several messages queued at once are one
// INSERT; their rows keep the order given (the relay publishes by seq),
// each with its own id, subject, data and the trace context.
func TestQueueManyKeepsTheirOrder(t *testing.T) {
	ctx := context.Background()
	pool, table := migrated(t)
	tp := sdktrace.NewTracerProvider()
	tctx, span := tp.Tracer("t").Start(ctx, "handler")
	defer span.End()
	var msgs []outbox.Message
	for _, id := range []string{"c", "a", "d", "b"} {
		msgs = append(msgs, outbox.Message{MsgID: "chg-" + id, Subject: eventbus.Change("deal", "m1", id), Data: []byte("data-" + id),
			Header: map[string][]string{eventbus.HeaderContentType: {eventbus.ContentTypeProtobuf}}})
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b pgx.Batch
	var mark outbox.Mark
	if err := table.Queue(tctx, &b, &mark, msgs...); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 1 {
		t.Errorf("%d statements queued for %d messages, want 1", b.Len(), len(msgs))
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var first int64
	if err := pool.QueryRow(ctx, `SELECT min(seq) FROM svc.outbox`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	if mark.Seq() != first {
		t.Errorf("mark %d, want the first row's seq %d", mark.Seq(), first)
	}
	rows, err := pool.Query(ctx, `SELECT msg_id, subject, data, header->>'traceparent', header->'`+eventbus.HeaderContentType+`'->>0 FROM svc.outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var id, subject, traceparent, contentType string
		var data []byte
		if err := rows.Scan(&id, &subject, &data, &traceparent, &contentType); err != nil {
			t.Fatal(err)
		}
		if i >= len(msgs) {
			t.Fatalf("more rows than messages: %s", id)
		}
		m := msgs[i]
		if id != m.MsgID || subject != m.Subject || string(data) != string(m.Data) || contentType != eventbus.ContentTypeProtobuf ||
			!strings.Contains(traceparent, span.SpanContext().TraceID().String()) {
			t.Errorf("row %d: %s %s %q %q %q, want %s %s %q with the handler's trace", i, id, subject, data, traceparent, contentType, m.MsgID, m.Subject, m.Data)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(msgs) {
		t.Errorf("%d rows, want %d", i, len(msgs))
	}
}

// TestFlushAfterCommitClaimsFromItsMark: a flush after a commit claims
// the transaction's rows and any committed after them, not the rows
// before its mark (those are the relay loop's); the zero Mark claims all.
func TestFlushAfterCommitClaimsFromItsMark(t *testing.T) {
	ctx := context.Background()
	pool, table := migrated(t)
	relay, _ := relayTo(t, pool, table)
	add := func(ids ...string) outbox.Mark {
		t.Helper()
		var mark outbox.Mark
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids { // one Add per message: the mark keeps the lowest
			if err := table.Add(ctx, tx, &mark, outbox.Message{MsgID: id, Subject: eventbus.Change("deal", "m1", id), Data: []byte(id)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return mark
	}
	pending := func(want int) {
		t.Helper()
		if n, err := relay.Pending(ctx); n != want || err != nil {
			t.Fatalf("pending %d (%v), want %d", n, err, want)
		}
	}
	before := add("a")
	mine := add("b", "c")
	if before.Seq() == 0 || mine.Seq() <= before.Seq() {
		t.Fatalf("marks %d then %d, want increasing and non-zero", before.Seq(), mine.Seq())
	}
	after := add("d") // committed after mine, before the flush
	if after.Seq() <= mine.Seq()+1 {
		t.Fatalf("mark of the later row %d, want after both of %d", after.Seq(), mine.Seq())
	}
	relay.FlushAfterCommit(ctx, mine)
	pending(1) // "a", before the mark
	add("e")
	relay.FlushAfterCommit(ctx, outbox.Mark{})
	pending(0)
}
