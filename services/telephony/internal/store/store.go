// Package store is telephony's PostgreSQL adapter: the calls mirror and the
// outbox its domain changes leave through.
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

// Schema is telephony's PostgreSQL schema.
const Schema = "telephony"

// Outbox is telephony's outbox table.
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

// Call is one mirrored call.
type Call struct {
	MemberID, CallID                         string
	CallType, FailedCode, FailedReason       string
	PortalUserID, DurationSec                int64
	PortalNumber, PhoneNumber, StartDate     string
	Cost, CostCurrency, CRMEntityType        string
	CRMEntityID, CRMActivityID, RecordFileID int64
	RecordStatus                             string
	Fields                                   change.Fields
	Hash, SourceEventID                      string
}

// Snapshot is a call's stored state.
type Snapshot struct {
	Exists bool
	Fields change.Fields
	Hash   string
}

// Store reads and writes telephony's tables.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Tx runs fn in a transaction, committing when fn returns nil.
func (s *Store) Tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// LockCall serialises work on one call for the rest of tx and returns its
// snapshot.
func LockCall(ctx context.Context, tx pgx.Tx, memberID, callID string) (Snapshot, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7))`, memberID, callID); err != nil {
		return Snapshot{}, fmt.Errorf("store: lock call: %w", err)
	}
	var snap Snapshot
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT fields, snapshot_hash FROM telephony.calls WHERE member_id = $1 AND call_id = $2`,
		memberID, callID).Scan(&raw, &snap.Hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, nil
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: get call: %w", err)
	}
	snap.Exists = true
	return snap, json.Unmarshal(raw, &snap.Fields)
}

// ErrNoCall is returned for a call that is not mirrored.
var ErrNoCall = errors.New("store: call not mirrored")

// RecordingFile returns the Disk file id of a mirrored call's recording
// and its record status; fileID is 0 when the call has none.
func RecordingFile(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, memberID, callID string) (fileID int64, status string, err error) {
	err = q.QueryRow(ctx, `SELECT record_file_id, record_status FROM telephony.calls WHERE member_id = $1 AND call_id = $2`,
		memberID, callID).Scan(&fileID, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", ErrNoCall
	}
	if err != nil {
		return 0, "", fmt.Errorf("store: recording of %s/%s: %w", memberID, callID, err)
	}
	return fileID, status, nil
}

// SaveCall upserts c.
func SaveCall(ctx context.Context, tx pgx.Tx, c Call) error {
	raw, err := json.Marshal(c.Fields)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO telephony.calls (member_id, call_id, call_type, failed_code, failed_reason,
		portal_user_id, portal_number, phone_number, duration_sec, start_date, cost, cost_currency, crm_entity_type,
		crm_entity_id, crm_activity_id, record_file_id, record_status, fields, snapshot_hash, source_event_id, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20, now())
		ON CONFLICT (member_id, call_id) DO UPDATE SET call_type = EXCLUDED.call_type, failed_code = EXCLUDED.failed_code,
		 failed_reason = EXCLUDED.failed_reason, portal_user_id = EXCLUDED.portal_user_id, portal_number = EXCLUDED.portal_number,
		 phone_number = EXCLUDED.phone_number, duration_sec = EXCLUDED.duration_sec, start_date = EXCLUDED.start_date,
		 cost = EXCLUDED.cost, cost_currency = EXCLUDED.cost_currency, crm_entity_type = EXCLUDED.crm_entity_type,
		 crm_entity_id = EXCLUDED.crm_entity_id, crm_activity_id = EXCLUDED.crm_activity_id, record_file_id = EXCLUDED.record_file_id,
		 record_status = EXCLUDED.record_status, fields = EXCLUDED.fields,
		 snapshot_hash = EXCLUDED.snapshot_hash, source_event_id = EXCLUDED.source_event_id, updated_at = now()`,
		c.MemberID, c.CallID, c.CallType, c.FailedCode, c.FailedReason, c.PortalUserID, c.PortalNumber, c.PhoneNumber,
		c.DurationSec, c.StartDate, c.Cost, c.CostCurrency, c.CRMEntityType, c.CRMEntityID, c.CRMActivityID, c.RecordFileID,
		c.RecordStatus, raw, c.Hash, c.SourceEventID)
	if err != nil {
		return fmt.Errorf("store: save call: %w", err)
	}
	return nil
}
