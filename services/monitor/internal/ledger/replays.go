package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// RecordReplay records that r.ID was published as a replay. When r.Consumer
// is set, a pending delivery row for (r.ID, r.Consumer) is created too, so
// the dashboard shows the replay as pending until that consumer reports.
func (s *Store) RecordReplay(ctx context.Context, r Replay) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO monitor.replays (id, original_id, replayed_from, consumer, requested_at, stream_seq)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
			r.ID, r.OriginalID, r.ReplayedFrom, r.Consumer, r.RequestedAt, int64(r.StreamSeq)); err != nil {
			return err
		}
		if r.Consumer == "" {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO monitor.deliveries (event_id, consumer, status, updated_at)
			VALUES ($1, $2, 'pending', now()) ON CONFLICT (event_id, consumer) DO NOTHING`, r.ID, r.Consumer)
		return err
	})
	if err != nil {
		return fmt.Errorf("ledger: record replay %s: %w", r.ID, err)
	}
	return nil
}

// Replays returns the replays of eventID (as the original or as the event
// replayed), newest first, each with its current status: the replayed
// event's delivery status at consumer when consumer is set, otherwise its
// derived status; "pending" until the replayed event is recorded.
func (s *Store) Replays(ctx context.Context, eventID, consumer string) ([]Replay, error) {
	rows, err := s.pool.Query(ctx, `SELECT r.id, r.original_id, r.replayed_from, r.consumer, r.requested_at, r.stream_seq,
		CASE WHEN $2 <> '' THEN COALESCE((SELECT d.status FROM monitor.deliveries d WHERE d.event_id = r.id AND d.consumer = $2), 'pending')
		ELSE COALESCE((SELECT d.status FROM monitor.deliveries d WHERE d.event_id = r.id
			ORDER BY array_position(ARRAY['dead','error','pending','done','skipped'], d.status) LIMIT 1),
			CASE WHEN EXISTS (SELECT 1 FROM monitor.webhook_events e WHERE e.id = r.id) THEN 'received' ELSE 'pending' END) END
		FROM monitor.replays r WHERE r.original_id = $1 OR r.replayed_from = $1
		ORDER BY r.requested_at DESC, r.id DESC LIMIT 100`, eventID, consumer)
	if err != nil {
		return nil, fmt.Errorf("ledger: replays: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Replay, error) {
		var (
			r   Replay
			seq int64
		)
		err := row.Scan(&r.ID, &r.OriginalID, &r.ReplayedFrom, &r.Consumer, &r.RequestedAt, &seq, &r.Status)
		r.StreamSeq, r.RequestedAt = uint64(seq), r.RequestedAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: replays: %w", err)
	}
	return out, nil
}
