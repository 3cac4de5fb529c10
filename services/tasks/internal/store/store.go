// Package store is the tasks service's PostgreSQL adapter: the task mirror
// (task fields plus checklist, with a snapshot hash) and the outbox.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumer/mirror"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the tasks service's PostgreSQL schema.
const Schema = "tasks"

// Outbox is the service's outbox table.
var Outbox = outbox.In(Schema)

//go:embed migrations/*.sql
var embedded embed.FS

// own holds the schema's migrations, NNN_name.sql at its root.
var own, _ = fs.Sub(embedded, "migrations") // a literal, existing directory: never fails

// Migrations are the schema's migrations with the outbox table's after
// them (postgres.WithComponents): the service's declaration hands them to
// libs/svcmain, and whoever applies them migrates both.
var Migrations = postgres.WithComponents(own, outbox.Component)

// Migrate applies Migrations to Schema: the service's, then the outbox
// table's own (libs/consumer/outbox).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	// The outbox's after ours: 002 hands an old outbox table over to it.
	return postgres.Migrate(ctx, pool, Schema, Migrations)
}

// Mirror returns the mirror step on this store's database and outbox;
// relay may be nil.
func (s *Store) Mirror(relay *outbox.Relay) *mirror.Mirror {
	return mirror.New(s.pool, Outbox, relay)
}

// Store reads and writes the service's tables.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Tx runs fn in a transaction, committing when fn returns nil.
func (s *Store) Tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// Snapshot is a task's stored state: the flattened fields the hash and
// diff are computed on.
type Snapshot struct {
	Exists, Deleted bool
	Flat            change.Fields
	Hash            string
}

// Live reports whether the task exists and is not deleted.
func (s Snapshot) Live() bool { return s.Exists && !s.Deleted }

// Task is the state to save; Fields nil marks it deleted.
type Task struct {
	MemberID      string
	ID            int64
	Fields        change.Fields
	Checklist     json.RawMessage
	Flat          change.Fields
	Hash          string
	SourceEventID string
	Title, Status string
	ResponsibleID int64
	Deadline      string
}

// LockTask serialises work on one task for the rest of tx and returns its
// snapshot.
func LockTask(ctx context.Context, tx pgx.Tx, memberID string, id int64) (Snapshot, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, $2))`, memberID, id); err != nil {
		return Snapshot{}, fmt.Errorf("store: lock task %d: %w", id, err)
	}
	var snap Snapshot
	var fields, checklist []byte
	err := tx.QueryRow(ctx, `SELECT fields, checklist, snapshot_hash, deleted FROM tasks.tasks WHERE member_id = $1 AND task_id = $2`,
		memberID, id).Scan(&fields, &checklist, &snap.Hash, &snap.Deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, nil
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: get task %d: %w", id, err)
	}
	snap.Exists = true
	var f change.Fields
	if err := json.Unmarshal(fields, &f); err != nil {
		return Snapshot{}, err
	}
	snap.Flat, err = Flatten(f, checklist)
	return snap, err
}

// SaveTask upserts t (or marks it deleted when t.Fields is nil).
func SaveTask(ctx context.Context, tx pgx.Tx, t Task) error {
	if t.Fields == nil {
		_, err := tx.Exec(ctx, `UPDATE tasks.tasks SET deleted = true, source_event_id = $3, updated_at = now()
			WHERE member_id = $1 AND task_id = $2`, t.MemberID, t.ID, t.SourceEventID)
		return err
	}
	fields, err := json.Marshal(t.Fields)
	if err != nil {
		return err
	}
	checklist := t.Checklist
	if len(checklist) == 0 {
		checklist = json.RawMessage("[]")
	}
	_, err = tx.Exec(ctx, `INSERT INTO tasks.tasks (member_id, task_id, fields, checklist, snapshot_hash, deleted, title,
		status, responsible_id, deadline, source_event_id, updated_at)
		VALUES ($1, $2, $3, $4, $5, false, $6, $7, $8, $9, $10, now())
		ON CONFLICT (member_id, task_id) DO UPDATE SET fields = EXCLUDED.fields, checklist = EXCLUDED.checklist,
		 snapshot_hash = EXCLUDED.snapshot_hash, deleted = false, title = EXCLUDED.title, status = EXCLUDED.status,
		 responsible_id = EXCLUDED.responsible_id, deadline = EXCLUDED.deadline,
		 source_event_id = EXCLUDED.source_event_id, updated_at = now()`,
		t.MemberID, t.ID, fields, []byte(checklist), t.Hash, t.Title, t.Status, t.ResponsibleID, t.Deadline, t.SourceEventID)
	if err != nil {
		return fmt.Errorf("store: save task %d: %w", t.ID, err)
	}
	return nil
}

// Flatten merges a task's fields and its checklist into one field set for
// hashing and diffing: every checklist row becomes a field
// "checklist.<ID>" holding the row's meaningful columns, so a ticked box or
// a renamed item shows in the diff like any other field.
func Flatten(fields change.Fields, checklist json.RawMessage) (change.Fields, error) {
	out := change.Fields{}
	for k, v := range fields {
		out[k] = v
	}
	if len(checklist) == 0 {
		return out, nil
	}
	var rows []map[string]json.RawMessage
	if err := json.Unmarshal(checklist, &rows); err != nil {
		return nil, fmt.Errorf("store: checklist: %w", err)
	}
	for _, r := range rows {
		var id any
		if err := json.Unmarshal(r["ID"], &id); err != nil {
			continue
		}
		item := map[string]json.RawMessage{}
		for _, k := range []string{"TITLE", "IS_COMPLETE", "IS_IMPORTANT", "PARENT_ID", "SORT_INDEX"} {
			if v, ok := r[k]; ok {
				item[k] = v
			}
		}
		b, _ := json.Marshal(item)
		out[fmt.Sprintf("checklist.%v", id)] = b
	}
	return out, nil
}
