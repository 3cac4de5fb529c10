package store_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
)

// TestUpgradeHandsTheOutboxOver upgrades a database of the release whose
// 001 created the service's own outbox table, with a change still waiting
// to be published: after Migrate the change is in the outbox table of
// libs/consumer/outbox, unpublished, and the old table is gone.
func TestUpgradeHandsTheOutboxOver(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	first, err := fs.ReadFile(store.Migrations, "001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	// The old release: 001 with the outbox table it used to create.
	old := fstest.MapFS{"001_init.sql": {Data: append(first, []byte(`
CREATE TABLE outbox (seq bigserial PRIMARY KEY, msg_id text NOT NULL, subject text NOT NULL, data bytea NOT NULL,
    header jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;`)...)}}
	if err := postgres.Migrate(ctx, pool, store.Schema, old); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, pool, `INSERT INTO deal_sync.outbox (msg_id, subject, data) VALUES ('chg-waiting', 'b24.changes.x.m1.1', 'x')`)

	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var waiting int
	var handover bool
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM deal_sync.outbox WHERE msg_id = 'chg-waiting' AND published_at IS NULL),
		to_regclass('deal_sync.outbox_handover') IS NOT NULL`).Scan(&waiting, &handover); err != nil {
		t.Fatal(err)
	}
	if waiting != 1 || handover {
		t.Errorf("after the upgrade: %d waiting changes (want 1), hand-over table left: %v", waiting, handover)
	}
	// A fresh database gets the same table.
	fresh := pgtest.NewPool(t)
	if err := store.Migrate(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, fresh, `INSERT INTO deal_sync.outbox (msg_id, subject, data) VALUES ('chg-1', 'b24.changes.x.m1.1', 'x')`)
}
