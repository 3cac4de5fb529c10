package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// AuditEvent is one recorded event with the folded state of each of its
// delivery rows, as the audit reads it.
type AuditEvent struct {
	ID         string
	Portal     string
	EventType  string
	Source     string
	ReceivedAt time.Time
	StreamSeq  uint64
	// Deliveries by consumer; a consumer without a row is absent.
	Deliveries map[string]AuditDelivery
}

// AuditDelivery is the part of a delivery row the audit judges.
type AuditDelivery struct {
	Status    string
	Attempts  int
	LastError string
	UpdatedAt time.Time
}

// AuditEvents returns the events received in [from, to) with their
// delivery rows, oldest first. It returns an error when more than limit
// events match, so an audit never judges a silently truncated window.
func (s *Store) AuditEvents(ctx context.Context, from, to time.Time, limit int) ([]AuditEvent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, e.portal, e.event_type, e.source, e.received_at, e.stream_seq,
			d.consumer, d.status, d.attempts, d.last_error, d.updated_at
		FROM (SELECT * FROM monitor.webhook_events WHERE received_at >= $1 AND received_at < $2
			ORDER BY received_at, id LIMIT $3) e
		LEFT JOIN monitor.deliveries d ON d.event_id = e.id
		ORDER BY e.received_at, e.id`, from, to, limit+1)
	if err != nil {
		return nil, fmt.Errorf("ledger: audit events: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var (
			e         AuditEvent
			seq       int64
			consumer  pgtype.Text
			status    pgtype.Text
			attempts  pgtype.Int4
			lastErr   pgtype.Text
			updatedAt pgtype.Timestamptz
		)
		if err := rows.Scan(&e.ID, &e.Portal, &e.EventType, &e.Source, &e.ReceivedAt, &seq,
			&consumer, &status, &attempts, &lastErr, &updatedAt); err != nil {
			return nil, fmt.Errorf("ledger: audit events: %w", err)
		}
		e.StreamSeq = uint64(seq)
		if n := len(out); n == 0 || out[n-1].ID != e.ID || !out[n-1].ReceivedAt.Equal(e.ReceivedAt) {
			e.Deliveries = map[string]AuditDelivery{}
			out = append(out, e)
		}
		if consumer.Valid {
			out[len(out)-1].Deliveries[consumer.String] = AuditDelivery{Status: status.String,
				Attempts: int(attempts.Int32), LastError: lastErr.String, UpdatedAt: updatedAt.Time}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: audit events: %w", err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("ledger: audit window holds more than %d events: narrow from/to", limit)
	}
	return out, nil
}

// RecordedIDs returns which of ids are recorded in webhook_events.
func (s *Store) RecordedIDs(ctx context.Context, ids []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT id FROM monitor.webhook_events WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("ledger: recorded ids: %w", err)
	}
	defer rows.Close()
	out := make(map[string]bool, len(ids))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("ledger: recorded ids: %w", err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// OldestUnfinished returns, per consumer, when the oldest delivery that is
// still pending or being retried was first seen (its first attempt, or
// its row's creation for a pending replay).
func (s *Store) OldestUnfinished(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT consumer, min(coalesce(first_attempt_at, updated_at))
		FROM monitor.deliveries WHERE status IN ('pending', 'error') GROUP BY consumer`)
	if err != nil {
		return nil, fmt.Errorf("ledger: oldest unfinished: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var (
			c  string
			at time.Time
		)
		if err := rows.Scan(&c, &at); err != nil {
			return nil, fmt.Errorf("ledger: oldest unfinished: %w", err)
		}
		out[c] = at
	}
	return out, rows.Err()
}
