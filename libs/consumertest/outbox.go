package consumertest

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OutboxHandover checks a service's upgrade from the release whose
// 001_init.sql created its own outbox table: a database migrated with that
// 001 (plus the old table) and holding a change still waiting to be
// published, then migrated with migrate, keeps the change unpublished in
// the outbox of libs/consumer/outbox and drops the hand-over table. A fresh
// database gets the same table. schema and migrations are the service's
// (its declaration's Database).
func OutboxHandover(t *testing.T, schema string, migrations fs.FS, migrate func(context.Context, *pgxpool.Pool) error) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	first, err := fs.ReadFile(migrations, "001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{"001_init.sql": {Data: append(first, []byte(`
CREATE TABLE outbox (seq bigserial PRIMARY KEY, msg_id text NOT NULL, subject text NOT NULL, data bytea NOT NULL,
    header jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;`)...)}}
	if err := postgres.Migrate(ctx, pool, schema, old); err != nil {
		t.Fatal(err)
	}
	outbox := pgx.Identifier{schema, "outbox"}.Sanitize()
	pgtest.MustExec(t, pool, `INSERT INTO `+outbox+` (msg_id, subject, data) VALUES ('chg-waiting', 'b24.changes.x.m1.1', 'x')`)
	if err := migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var waiting int
	var handover bool
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+outbox+` WHERE msg_id = 'chg-waiting' AND published_at IS NULL),
		to_regclass($1) IS NOT NULL`, schema+".outbox_handover").Scan(&waiting, &handover); err != nil {
		t.Fatal(err)
	}
	if waiting != 1 || handover {
		t.Errorf("after the upgrade: %d waiting changes (want 1), hand-over table left: %v", waiting, handover)
	}
	fresh := pgtest.NewPool(t)
	if err := migrate(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, fresh, `INSERT INTO `+outbox+` (msg_id, subject, data) VALUES ('chg-1', 'b24.changes.x.m1.1', 'x')`)
}
