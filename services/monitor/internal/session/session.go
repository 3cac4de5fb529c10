// Package session keeps the dashboard's sign-in sessions in PostgreSQL, so
// that every monitor replica sees the same ones and an operator can end
// them all without rotating the API token. A session id is 32 random bytes;
// only its SHA-256 is stored.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TTL is how long a session lasts after sign-in.
const TTL = 12 * time.Hour

// Store creates, checks and revokes sessions in the monitor schema's
// sessions table (migration 002_sessions.sql).
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// New returns a Store on pool; now is the clock (default time.Now).
func New(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: now}
}

// Create starts a session and returns its id (the cookie value) and when it
// expires. Expired and revoked sessions are deleted on the way.
func (s *Store) Create(ctx context.Context) (id string, expires time.Time, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", time.Time{}, err
	}
	id = base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	expires = now.Add(TTL)
	if _, err := s.pool.Exec(ctx, `DELETE FROM monitor.sessions WHERE expires_at < $1 OR revoked_at IS NOT NULL`, now); err != nil {
		return "", time.Time{}, fmt.Errorf("session: prune: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO monitor.sessions (id_sha256, created_at, expires_at) VALUES ($1, $2, $3)`,
		hash(id), now, expires); err != nil {
		return "", time.Time{}, fmt.Errorf("session: create: %w", err)
	}
	return id, expires, nil
}

// Valid reports whether id is a session that has neither expired nor been
// revoked. An error means the store could not be asked.
func (s *Store) Valid(ctx context.Context, id string) (bool, error) {
	if id == "" {
		return false, nil
	}
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT expires_at > $2 AND revoked_at IS NULL FROM monitor.sessions WHERE id_sha256 = $1`,
		hash(id), s.now()).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("session: check: %w", err)
	}
	return ok, nil
}

// Revoke ends one session (sign-out).
func (s *Store) Revoke(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE monitor.sessions SET revoked_at = $2 WHERE id_sha256 = $1 AND revoked_at IS NULL`,
		hash(id), s.now()); err != nil {
		return fmt.Errorf("session: revoke: %w", err)
	}
	return nil
}

// RevokeAll ends every session and returns how many were still live.
func (s *Store) RevokeAll(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE monitor.sessions SET revoked_at = $1 WHERE revoked_at IS NULL AND expires_at > $1`, s.now())
	if err != nil {
		return 0, fmt.Errorf("session: revoke all: %w", err)
	}
	return tag.RowsAffected(), nil
}

func hash(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}
