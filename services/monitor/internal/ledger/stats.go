package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LastSeen is the newest event of one portal, event type and source.
type LastSeen struct {
	Portal         string    `json:"portal"`
	EventType      string    `json:"event_type"`
	Source         string    `json:"source"`
	Domain         string    `json:"domain"`
	LastReceivedAt time.Time `json:"last_received_at"`
	LastEventID    string    `json:"last_event_id"`
	Total          int64     `json:"total"`
}

// LastSeen returns every last_seen row, by portal, event type and source.
func (s *Store) LastSeen(ctx context.Context) ([]LastSeen, error) {
	rows, err := s.pool.Query(ctx, `SELECT portal, event_type, source, domain, last_received_at, last_event_id, total
		FROM monitor.last_seen ORDER BY portal, event_type, source`)
	if err != nil {
		return nil, fmt.Errorf("ledger: last seen: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LastSeen, error) {
		var l LastSeen
		err := row.Scan(&l.Portal, &l.EventType, &l.Source, &l.Domain, &l.LastReceivedAt, &l.LastEventID, &l.Total)
		l.LastReceivedAt = l.LastReceivedAt.UTC()
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: last seen: %w", err)
	}
	return out, nil
}

// ThroughputPoint is the number of events of one type received in one bucket.
type ThroughputPoint struct {
	Bucket    time.Time `json:"bucket"`
	EventType string    `json:"event_type"`
	N         int64     `json:"n"`
}

// Throughput counts events received in [from, to) per bucket and event type,
// optionally for one portal.
func (s *Store) Throughput(ctx context.Context, from, to time.Time, bucket time.Duration, portal string) ([]ThroughputPoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT date_bin($3::interval, received_at, $1) AS b, event_type, count(*)
		FROM monitor.webhook_events WHERE received_at >= $1 AND received_at < $2 AND ($4 = '' OR portal = $4)
		GROUP BY b, event_type ORDER BY b, event_type`, from, to, bucket, portal)
	if err != nil {
		return nil, fmt.Errorf("ledger: throughput: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ThroughputPoint, error) {
		var p ThroughputPoint
		err := row.Scan(&p.Bucket, &p.EventType, &p.N)
		p.Bucket = p.Bucket.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: throughput: %w", err)
	}
	return out, nil
}

// OutcomeCount is the number of attempts of one kind in a time range.
type OutcomeCount struct {
	Consumer  string `json:"consumer"`
	Portal    string `json:"portal"`
	Kind      string `json:"kind"`
	ErrorKind string `json:"error_kind,omitempty"`
	N         int64  `json:"n"`
}

// OutcomeCounts sums outcome_counts over the minute buckets in [from, to).
func (s *Store) OutcomeCounts(ctx context.Context, from, to time.Time) ([]OutcomeCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT consumer, portal, kind, error_kind, sum(n)::bigint FROM monitor.outcome_counts
		WHERE bucket >= $1 AND bucket < $2 GROUP BY consumer, portal, kind, error_kind
		ORDER BY consumer, portal, kind, error_kind`, from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger: outcome counts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (OutcomeCount, error) {
		var c OutcomeCount
		return c, row.Scan(&c.Consumer, &c.Portal, &c.Kind, &c.ErrorKind, &c.N)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: outcome counts: %w", err)
	}
	return out, nil
}

// SourceCount is the number of events from one source in a time range.
type SourceCount struct {
	Source string `json:"source"`
	N      int64  `json:"n"`
}

// SourceCounts counts events received in [from, to) per source.
func (s *Store) SourceCounts(ctx context.Context, from, to time.Time) ([]SourceCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT source, count(*) FROM monitor.webhook_events
		WHERE received_at >= $1 AND received_at < $2 GROUP BY source ORDER BY source`, from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger: source counts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SourceCount, error) {
		var c SourceCount
		return c, row.Scan(&c.Source, &c.N)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: source counts: %w", err)
	}
	return out, nil
}
