// Package store is deal-sync's PostgreSQL adapter: the deal mirror
// (snapshots with their hash), the own-write registry used for echo
// suppression, and the outbox the domain changes leave through.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumer/mirror"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is deal-sync's PostgreSQL schema.
const Schema = "deal_sync"

// Outbox is deal-sync's outbox table.
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

// Store reads and writes deal-sync's tables. Every query names the schema,
// so the pool needs no search_path.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool returns the underlying pool (for the outbox relay).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Snapshot is the stored state of one deal.
type Snapshot struct {
	// Exists is false when the deal was never mirrored.
	Exists  bool
	Deleted bool
	Fields  change.Fields
	Hash    string
}

// Live reports whether the deal exists and is not deleted.
func (s Snapshot) Live() bool { return s.Exists && !s.Deleted }

// Deal is the state to save.
type Deal struct {
	MemberID string
	ID       int64
	// Fields nil marks the deal deleted (its last fields are kept).
	Fields        change.Fields
	Hash          string
	SourceEventID string
	// Raw, when set, is Fields as one JSON object (the portal's answer),
	// stored as is instead of encoding Fields again.
	Raw []byte
	// Typed copies of common fields, for queries.
	Title, StageID, Opportunity, CurrencyID string
	CategoryID, AssignedByID                int64
	DateModify                              time.Time
}

// Tx runs fn in a transaction, committing when fn returns nil.
func (s *Store) Tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// LockDeal serialises work on one deal across handlers and replicas for the
// rest of tx, and returns its snapshot.
func LockDeal(ctx context.Context, tx pgx.Tx, memberID string, id int64) (Snapshot, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, $2))`, memberID, id); err != nil {
		return Snapshot{}, fmt.Errorf("store: lock deal %d: %w", id, err)
	}
	return get(ctx, tx, memberID, id)
}

// GetDeal returns a deal's snapshot without locking.
func (s *Store) GetDeal(ctx context.Context, memberID string, id int64) (Snapshot, error) {
	return get(ctx, s.pool, memberID, id)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func get(ctx context.Context, q querier, memberID string, id int64) (Snapshot, error) {
	var snap Snapshot
	var raw []byte
	err := q.QueryRow(ctx, `SELECT fields, snapshot_hash, deleted FROM deal_sync.deals WHERE member_id = $1 AND deal_id = $2`,
		memberID, id).Scan(&raw, &snap.Hash, &snap.Deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, nil
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: get deal %d: %w", id, err)
	}
	snap.Exists = true
	if err := json.Unmarshal(raw, &snap.Fields); err != nil {
		return Snapshot{}, fmt.Errorf("store: deal %d fields: %w", id, err)
	}
	return snap, nil
}

// SaveDeal upserts d. A deleted deal keeps its last fields and hash.
func SaveDeal(ctx context.Context, tx pgx.Tx, d Deal) error {
	if d.Fields == nil {
		_, err := tx.Exec(ctx, `UPDATE deal_sync.deals SET deleted = true, source_event_id = $3, updated_at = now()
			WHERE member_id = $1 AND deal_id = $2`, d.MemberID, d.ID, d.SourceEventID)
		if err != nil {
			return fmt.Errorf("store: delete deal %d: %w", d.ID, err)
		}
		return nil
	}
	raw, err := json.Marshal(d.Fields)
	if err != nil {
		return fmt.Errorf("store: deal %d fields: %w", d.ID, err)
	}
	var modify *time.Time
	if !d.DateModify.IsZero() {
		modify = &d.DateModify
	}
	_, err = tx.Exec(ctx, upsertDeal,
		d.MemberID, d.ID, raw, d.Hash, d.Title, d.StageID, d.CategoryID, d.Opportunity,
		d.CurrencyID, d.AssignedByID, modify, d.SourceEventID)
	if err != nil {
		return fmt.Errorf("store: save deal %d: %w", d.ID, err)
	}
	return nil
}

// upsertDeal saves a deal's state ($1 member … $12 source event).
const upsertDeal = `INSERT INTO deal_sync.deals
		(member_id, deal_id, fields, snapshot_hash, deleted, title, stage_id, category_id, opportunity,
		 currency_id, assigned_by_id, date_modify, source_event_id, updated_at)
		VALUES ($1, $2, $3, $4, false, $5, $6, $7, $8, $9, $10, $11, $12, now())` + onDealConflict

// onDealConflict is what an upsert of a deal (upsertDeal, upsertDeals)
// does when the row exists: the new state replaces the old.
const onDealConflict = `
		ON CONFLICT (member_id, deal_id) DO UPDATE SET
		 fields = EXCLUDED.fields, snapshot_hash = EXCLUDED.snapshot_hash, deleted = false,
		 title = EXCLUDED.title, stage_id = EXCLUDED.stage_id, category_id = EXCLUDED.category_id,
		 opportunity = EXCLUDED.opportunity, currency_id = EXCLUDED.currency_id,
		 assigned_by_id = EXCLUDED.assigned_by_id, date_modify = EXCLUDED.date_modify,
		 source_event_id = EXCLUDED.source_event_id, updated_at = now()`

// Write is one entry of the own-write registry.
type Write struct {
	CommandID string
	MemberID  string
	DealID    int64
	Fields    change.Fields
	Origin    string
}

// Write statuses.
const (
	WritePending = "pending"
	WriteWritten = "written"
	WriteNoop    = "noop"
)

// WriteStatus returns the status of a command's write, "" when unknown.
func (s *Store) WriteStatus(ctx context.Context, commandID string) (string, error) {
	var st string
	err := s.pool.QueryRow(ctx, `SELECT status FROM deal_sync.own_writes WHERE command_id = $1`, commandID).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: write status: %w", err)
	}
	return st, nil
}

// RecordWrite registers w with status before the portal is called (or as
// noop), renewing its time when it exists, so the echo it causes is
// recognised however quickly it comes back.
func (s *Store) RecordWrite(ctx context.Context, w Write, status string) error {
	raw, err := json.Marshal(w.Fields)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO deal_sync.own_writes (command_id, member_id, deal_id, fields, fingerprint, status, origin, written_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now())
		ON CONFLICT (command_id) DO UPDATE SET status = EXCLUDED.status, written_at = now(), consumed_at = NULL`,
		w.CommandID, w.MemberID, w.DealID, raw, change.Hash(w.Fields), status, w.Origin)
	if err != nil {
		return fmt.Errorf("store: record write: %w", err)
	}
	return nil
}

// SetWriteStatus updates a registered write.
func (s *Store) SetWriteStatus(ctx context.Context, commandID, status string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE deal_sync.own_writes SET status = $2 WHERE command_id = $1`, commandID, status); err != nil {
		return fmt.Errorf("store: write status: %w", err)
	}
	return nil
}

// DeleteWrite forgets a write the portal refused, so it cannot mask a real
// change.
func (s *Store) DeleteWrite(ctx context.Context, commandID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM deal_sync.own_writes WHERE command_id = $1`, commandID); err != nil {
		return fmt.Errorf("store: delete write: %w", err)
	}
	return nil
}

// ConsumeEcho looks for an open own write of this deal, newer than ttl,
// that explains the change from the snapshot to now: every changed field
// (ignoring volatile ones) was written by it with the value now present. It
// marks the write consumed and returns its command id, or "" when the change
// is not an echo.
func ConsumeEcho(ctx context.Context, tx pgx.Tx, memberID string, id int64, changed []string, now change.Fields, ttl time.Duration) (string, error) {
	rows, err := tx.Query(ctx, `SELECT command_id, fields FROM deal_sync.own_writes
		WHERE member_id = $1 AND deal_id = $2 AND consumed_at IS NULL AND status <> 'noop'
		  AND written_at > now() - $3::interval
		ORDER BY written_at DESC`, memberID, id, ttl.String())
	if err != nil {
		return "", fmt.Errorf("store: own writes: %w", err)
	}
	type cand struct {
		id     string
		fields change.Fields
	}
	var cands []cand
	for rows.Next() {
		var c cand
		var raw []byte
		if err := rows.Scan(&c.id, &raw); err != nil {
			rows.Close()
			return "", err
		}
		if err := json.Unmarshal(raw, &c.fields); err != nil {
			rows.Close()
			return "", err
		}
		cands = append(cands, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	for _, c := range cands {
		if !explains(c.fields, changed, now) {
			continue
		}
		if _, err := tx.Exec(ctx, `UPDATE deal_sync.own_writes SET consumed_at = now() WHERE command_id = $1`, c.id); err != nil {
			return "", fmt.Errorf("store: consume write: %w", err)
		}
		return c.id, nil
	}
	return "", nil
}

// explains reports whether a write of written explains a change of the
// changed fields to the values in now.
func explains(written change.Fields, changed []string, now change.Fields) bool {
	for _, f := range changed {
		if _, ok := written[f]; !ok {
			return false
		}
	}
	for f, v := range written {
		if !change.SameValue(v, now[f]) {
			return false
		}
	}
	return true
}
