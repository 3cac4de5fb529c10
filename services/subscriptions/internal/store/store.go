// Package store is the subscriptions service's PostgreSQL state in schema
// "subscriptions": reconciliation watermarks, reserved offline batches, the
// install audit, probes and the last subscription check per portal. No
// secret is ever written here (credentials live encrypted in NATS KV).
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the PostgreSQL schema the service owns.
const Schema = "subscriptions"

//go:embed migrations/*.sql
var embedded embed.FS

// Migrations holds the schema's migrations, NNN_name.sql at its root: the
// service's declaration hands them to libs/svcmain, which applies them.
var Migrations, _ = fs.Sub(embedded, "migrations") // a literal, existing directory: never fails

// Migrate applies the embedded migrations. Replicas starting together race
// on CREATE SCHEMA IF NOT EXISTS (PostgreSQL answers the loser with a
// unique violation), so a failed attempt is retried, five attempts in all
// with jittered waits from 200 ms; the migrations themselves run under
// tern's advisory lock. It returns the last attempt's error.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond), backoff.WithMaxElapsedTime(0))
	return backoff.Retry(func() error {
		return postgres.Migrate(ctx, pool, Schema, Migrations)
	}, backoff.WithContext(backoff.WithMaxRetries(b, 4), ctx))
}

// Store reads and writes the service's tables.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool (migrated with Migrate).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Watermark returns the stored watermark; ok is false when there is none.
func (s *Store) Watermark(ctx context.Context, memberID, entity string) (t time.Time, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT modified_at FROM subscriptions.watermarks WHERE member_id=$1 AND entity=$2`,
		memberID, entity).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: watermark %s/%s: %w", memberID, entity, err)
	}
	return t, true, nil
}

// SetWatermark stores t unless a later watermark is already stored (a
// watermark never moves back).
func (s *Store) SetWatermark(ctx context.Context, memberID, entity string, t time.Time) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO subscriptions.watermarks (member_id, entity, modified_at) VALUES ($1, $2, $3)
		ON CONFLICT (member_id, entity) DO UPDATE
		SET modified_at = GREATEST(watermarks.modified_at, EXCLUDED.modified_at), updated_at = now()`,
		memberID, entity, t)
	if err != nil {
		return fmt.Errorf("store: set watermark %s/%s: %w", memberID, entity, err)
	}
	return nil
}

// PendingBatch returns the reserved offline batch of a portal, if any.
func (s *Store) PendingBatch(ctx context.Context, memberID string) (string, bool, error) {
	var pid string
	err := s.pool.QueryRow(ctx, `SELECT process_id FROM subscriptions.offline_batches WHERE member_id=$1`, memberID).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: pending batch %s: %w", memberID, err)
	}
	return pid, true, nil
}

// SetPendingBatch remembers a reserved batch before its records are
// published.
func (s *Store) SetPendingBatch(ctx context.Context, memberID, processID string) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO subscriptions.offline_batches (member_id, process_id) VALUES ($1, $2)
		ON CONFLICT (member_id) DO UPDATE SET process_id = EXCLUDED.process_id, reserved_at = now()`,
		memberID, processID)
	if err != nil {
		return fmt.Errorf("store: set pending batch %s: %w", memberID, err)
	}
	return nil
}

// ClearPendingBatch forgets a batch once it is cleared on the portal.
func (s *Store) ClearPendingBatch(ctx context.Context, memberID, processID string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM subscriptions.offline_batches WHERE member_id=$1 AND process_id=$2`, memberID, processID)
	if err != nil {
		return fmt.Errorf("store: clear pending batch %s: %w", memberID, err)
	}
	return nil
}

// InstallRecord is one audited install decision.
type InstallRecord struct {
	MemberID       string
	Domain         string
	ClientEndpoint string
	Event          string
	Accepted       bool
	Reason         string
	At             time.Time
}

// RecordInstall audits an install or uninstall decision.
func (s *Store) RecordInstall(ctx context.Context, r InstallRecord) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO subscriptions.installs (member_id, domain, client_endpoint, event, accepted, reason)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		r.MemberID, r.Domain, r.ClientEndpoint, r.Event, r.Accepted, r.Reason)
	if err != nil {
		return fmt.Errorf("store: record install %s: %w", r.MemberID, err)
	}
	return nil
}

// PruneInstalls deletes audited install decisions made before before,
// except each portal's latest accepted one per event (LastAccepted orders
// lifecycle events by it). Forged installs add a row each, so without
// pruning a flood grows the table forever. It returns how many rows it
// deleted.
func (s *Store) PruneInstalls(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM subscriptions.installs i WHERE i.at < $1 AND NOT (i.accepted AND i.id = (
			SELECT max(j.id) FROM subscriptions.installs j
			WHERE j.member_id = i.member_id AND j.event = i.event AND j.accepted))`, before)
	if err != nil {
		return 0, fmt.Errorf("store: prune installs: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Installs returns the latest audited decisions for memberID, newest first
// ("" for every portal).
func (s *Store) Installs(ctx context.Context, memberID string, limit int) ([]InstallRecord, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT member_id, domain, client_endpoint, event, accepted, reason, at FROM subscriptions.installs
		WHERE $1 = '' OR member_id = $1 ORDER BY id DESC LIMIT $2`, memberID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: installs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (InstallRecord, error) {
		var x InstallRecord
		err := r.Scan(&x.MemberID, &x.Domain, &x.ClientEndpoint, &x.Event, &x.Accepted, &x.Reason, &x.At)
		return x, err
	})
}

// ProbeSent records a probe.
func (s *Store) ProbeSent(ctx context.Context, probeID, memberID string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO subscriptions.probes (probe_id, member_id, sent_at) VALUES ($1, $2, $3)
		ON CONFLICT (probe_id) DO NOTHING`, probeID, memberID, at)
	if err != nil {
		return fmt.Errorf("store: probe sent: %w", err)
	}
	return nil
}

// ProbeReceived marks a probe answered and returns when it was sent; ok is
// false for an unknown or already answered probe.
func (s *Store) ProbeReceived(ctx context.Context, probeID string, at time.Time) (sent time.Time, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `UPDATE subscriptions.probes SET received_at=$2
		WHERE probe_id=$1 AND received_at IS NULL RETURNING sent_at`, probeID, at).Scan(&sent)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: probe received: %w", err)
	}
	return sent, true, nil
}

// SyncStatus is the last subscription check of a portal.
type SyncStatus struct {
	MemberID  string    `json:"member_id"`
	CheckedAt time.Time `json:"checked_at"`
	Drift     int       `json:"drift"`
	Repaired  int       `json:"repaired"`
	Error     string    `json:"error,omitempty"`
}

// RecordSync stores the result of a subscription check.
func (s *Store) RecordSync(ctx context.Context, st SyncStatus) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO subscriptions.sync_status (member_id, checked_at, drift, repaired, error) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (member_id) DO UPDATE SET checked_at=EXCLUDED.checked_at, drift=EXCLUDED.drift,
			repaired=EXCLUDED.repaired, error=EXCLUDED.error`,
		st.MemberID, st.CheckedAt, st.Drift, st.Repaired, st.Error)
	if err != nil {
		return fmt.Errorf("store: record sync %s: %w", st.MemberID, err)
	}
	return nil
}

// LastAccepted returns when an event of kind (ONAPPINSTALL, ONAPPUNINSTALL)
// was last accepted for memberID; ok is false when never.
func (s *Store) LastAccepted(ctx context.Context, memberID, event string) (at time.Time, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT at FROM subscriptions.installs
		WHERE member_id=$1 AND event=$2 AND accepted ORDER BY id DESC LIMIT 1`, memberID, event).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: last %s %s: %w", event, memberID, err)
	}
	return at, true, nil
}
