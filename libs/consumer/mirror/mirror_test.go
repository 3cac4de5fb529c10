package mirror_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumer/mirror"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// things is a minimal mirror table, the shape the services' tables have:
// the fields as received, their hash, and a deletion marker.
const things = `CREATE TABLE svc.things (
    member_id text NOT NULL, id text NOT NULL,
    fields jsonb, snapshot_hash text NOT NULL DEFAULT '', deleted bool NOT NULL DEFAULT false,
    PRIMARY KEY (member_id, id))`

type env struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
	m    *mirror.Mirror
	cons jetstream.Consumer
}

func setup(t *testing.T) *env {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	pgtest.MustExec(t, pool, "CREATE SCHEMA svc")
	pgtest.MustExec(t, pool, things)
	table := outbox.In("svc")
	if err := table.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Start(t).JetStream(t)
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	relay := outbox.NewRelay(table, pool, eventbus.NewPublisher(js), slog.New(slog.DiscardHandler))
	cons, err := js.OrderedConsumer(ctx, eventbus.StreamChanges, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &env{t: t, ctx: ctx, pool: pool, cons: cons,
		m: mirror.New(pool, table, relay).WithClock(func() time.Time { return at })}
}

// entity is a mirrored "thing" with the callbacks a service would write.
func (e *env) entity(id, event string, fields change.Fields) mirror.Entity {
	return mirror.Entity{MemberID: "m1", Type: "thing", ID: id, EventID: event, Fields: fields, Volatile: []string{"URL"},
		Lock: func(ctx context.Context, tx pgx.Tx) (mirror.Snapshot, error) {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, id); err != nil {
				return mirror.Snapshot{}, err
			}
			var s mirror.Snapshot
			var raw []byte
			var deleted bool
			err := tx.QueryRow(ctx, `SELECT fields, snapshot_hash, deleted FROM svc.things WHERE member_id = 'm1' AND id = $1`, id).
				Scan(&raw, &s.Hash, &deleted)
			if errors.Is(err, pgx.ErrNoRows) {
				return s, nil
			}
			if err != nil {
				return s, err
			}
			s.Live = !deleted
			if len(raw) > 0 {
				err = json.Unmarshal(raw, &s.Fields)
			}
			return s, err
		},
		Save: func(ctx context.Context, tx pgx.Tx, hash string) error {
			raw, _ := json.Marshal(fields)
			_, err := tx.Exec(ctx, `INSERT INTO svc.things (member_id, id, fields, snapshot_hash, deleted) VALUES ('m1', $1, $2, $3, $4)
				ON CONFLICT (member_id, id) DO UPDATE SET fields = EXCLUDED.fields, snapshot_hash = EXCLUDED.snapshot_hash, deleted = EXCLUDED.deleted`,
				id, raw, hash, fields == nil)
			return err
		},
	}
}

func fields(kv ...string) change.Fields {
	f := change.Fields{}
	for i := 0; i < len(kv); i += 2 {
		f[kv[i]], _ = json.Marshal(kv[i+1])
	}
	return f
}

// next returns the next published change.
func (e *env) next() *eventsv1.DomainChange {
	e.t.Helper()
	msg, err := e.cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		e.t.Fatalf("no change published: %v", err)
	}
	if msg.Headers().Get(eventbus.HeaderContentType) != eventbus.ContentTypeProtobuf {
		e.t.Errorf("content type %q", msg.Headers().Get(eventbus.HeaderContentType))
	}
	dc := &eventsv1.DomainChange{}
	if err := proto.Unmarshal(msg.Data(), dc); err != nil {
		e.t.Fatal(err)
	}
	if msg.Subject() != change.Subject(dc) || msg.Headers().Get(eventbus.HeaderMsgID) != dc.GetId() {
		e.t.Errorf("subject %q msg id %q for change %s", msg.Subject(), msg.Headers().Get(eventbus.HeaderMsgID), dc.GetId())
	}
	return dc
}

// none checks that nothing more was published.
func (e *env) none() {
	e.t.Helper()
	if msg, err := e.cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond)); err == nil {
		e.t.Errorf("unexpected change on %s", msg.Subject())
	}
}

func (e *env) apply(ents ...mirror.Entity) []error {
	return e.m.Apply(e.ctx, ents...)
}

func skipReason(err error) string {
	var s *consumer.SkipError
	if errors.As(err, &s) {
		return s.Reason
	}
	return ""
}

func TestApply(t *testing.T) {
	e := setup(t)

	// New: CREATED, published at once (the flush after commit).
	if errs := e.apply(e.entity("1", "ev1", fields("TITLE", "a", "URL", "u1"))); errs[0] != nil {
		t.Fatalf("create: %v", errs[0])
	}
	dc := e.next()
	if dc.GetKind() != eventsv1.ChangeKind_CHANGE_KIND_CREATED || dc.GetEntityId() != "1" || dc.GetSourceEventId() != "ev1" || dc.GetMemberId() != "m1" {
		t.Errorf("create: %v", dc)
	}

	// The same state again, or only a volatile field changed: nothing.
	for _, f := range []change.Fields{fields("TITLE", "a", "URL", "u1"), fields("TITLE", "a", "URL", "u2")} {
		if errs := e.apply(e.entity("1", "ev2", f)); skipReason(errs[0]) != mirror.ReasonNoChange {
			t.Errorf("unchanged: %v", errs[0])
		}
	}
	e.none()

	// A change: UPDATED with the field diff, without the volatile field.
	if errs := e.apply(e.entity("1", "ev3", fields("TITLE", "b", "URL", "u3"))); errs[0] != nil {
		t.Fatalf("update: %v", errs[0])
	}
	dc = e.next()
	if dc.GetKind() != eventsv1.ChangeKind_CHANGE_KIND_UPDATED || len(dc.GetChanges()) != 1 || dc.GetChanges()[0].GetField() != "TITLE" {
		t.Errorf("update: %v", dc)
	}

	// Check may save without publishing.
	echo := e.entity("1", "ev4", fields("TITLE", "c"))
	echo.Check = func(context.Context, pgx.Tx, mirror.Snapshot) (string, error) { return "echo of own write", nil }
	if errs := e.apply(echo); skipReason(errs[0]) != "echo of own write" {
		t.Errorf("check: %v", errs[0])
	}
	e.none()
	var title string
	if err := e.pool.QueryRow(e.ctx, `SELECT fields->>'TITLE' FROM svc.things WHERE id = '1'`).Scan(&title); err != nil || title != "c" {
		t.Errorf("state after a skipped check: %q %v", title, err)
	}

	// A failing Save or Check rolls back: no state, no change.
	bad := e.entity("2", "ev5", fields("TITLE", "x"))
	bad.Check = func(context.Context, pgx.Tx, mirror.Snapshot) (string, error) {
		return "", errors.New("echo table unavailable")
	}
	if errs := e.apply(bad); errs[0] == nil || skipReason(errs[0]) != "" {
		t.Errorf("failing check: %v", errs[0])
	}
	var n int
	if err := e.pool.QueryRow(e.ctx, `SELECT (SELECT count(*) FROM svc.things WHERE id = '2') + (SELECT count(*) FROM svc.outbox WHERE published_at IS NULL)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rolled back write left %d rows (%v)", n, err)
	}

	// Several at once, one flush: a delete and a create.
	errs := e.apply(e.entity("1", "ev6", nil), e.entity("3", "ev7", fields("TITLE", "z")))
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("batch: %v", errs)
	}
	kinds := map[string]eventsv1.ChangeKind{}
	for range 2 {
		dc := e.next()
		kinds[dc.GetEntityId()] = dc.GetKind()
	}
	if kinds["1"] != eventsv1.ChangeKind_CHANGE_KIND_DELETED || kinds["3"] != eventsv1.ChangeKind_CHANGE_KIND_CREATED {
		t.Errorf("batch changes %v", kinds)
	}
	if errs := e.apply(e.entity("1", "ev8", nil)); skipReason(errs[0]) != mirror.ReasonAlreadyDeleted {
		t.Errorf("second delete: %v", errs[0])
	}
	e.none()

	// An incomplete entity is refused as permanent, not retried.
	if errs := e.apply(mirror.Entity{MemberID: "m1"}); !errors.Is(errs[0], consumer.ErrPermanent) {
		t.Errorf("incomplete entity: %v", errs[0])
	}
}
