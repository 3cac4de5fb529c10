package alert

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Lease decides which replica evaluates. Hold is called before every
// evaluation and reports whether this replica holds the lease now.
type Lease interface {
	Hold(ctx context.Context) bool
	Release(ctx context.Context)
}

// LeaseKey is the PostgreSQL advisory lock key of the evaluator lease.
const LeaseKey int64 = 0x6232346c65617365 // "b24lease"

// PGLease is a lease on a PostgreSQL session advisory lock, held on one
// dedicated connection. When that connection breaks (PostgreSQL restart,
// network) the lock is gone with it, and Hold reports false until the lock
// is taken again, by this replica or another.
type PGLease struct {
	pool *pgxpool.Pool
	key  int64
	mu   sync.Mutex
	conn *pgxpool.Conn
}

// NewPGLease returns a lease on advisory lock key.
func NewPGLease(pool *pgxpool.Pool, key int64) *PGLease { return &PGLease{pool: pool, key: key} }

// Hold implements Lease.
func (l *PGLease) Hold(ctx context.Context) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		// A session lock lives as long as its session: a live connection
		// still holds it.
		if l.conn.Ping(ctx) == nil {
			return true
		}
		l.drop()
	}
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return false
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&ok); err != nil || !ok {
		conn.Release()
		return false
	}
	l.conn = conn
	return true
}

// drop forgets a connection whose lock may be gone; closing it releases
// the lock server-side if the session still exists.
func (l *PGLease) drop() {
	_ = l.conn.Conn().Close(context.Background())
	l.conn.Release()
	l.conn = nil
}

// Release implements Lease: it unlocks and returns the connection.
func (l *PGLease) Release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	if _, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", l.key); err != nil {
		l.drop()
		return
	}
	l.conn.Release()
	l.conn = nil
}
