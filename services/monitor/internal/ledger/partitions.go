package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// partitionLock serialises partition maintenance across replicas.
const partitionLock = 0x6232347061727473 // "b24parts"

// partitionName is the daily partition holding day (UTC).
func partitionName(day time.Time) string {
	return "webhook_events_p" + day.UTC().Format("20060102")
}

// partitionDays lists the UTC days that must have a partition at now: from
// the oldest day still inside the horizon to two days ahead, so that
// midnight never finds the next day missing.
func partitionDays(now time.Time, horizon time.Duration) []time.Time {
	first := now.Add(-horizon).UTC().Truncate(24 * time.Hour)
	last := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, 2)
	var days []time.Time
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	return days
}

// MaintainPartitions enforces the retention horizon: it creates the daily
// partitions of webhook_events from now-horizon to now+2 days, drops
// partitions entirely older than the horizon, and deletes rows older than
// the horizon from the default partition, deliveries, outcome_counts,
// replays and resolved alerts. It is idempotent and safe to run from every
// replica. It returns the number of partitions dropped.
func (s *Store) MaintainPartitions(ctx context.Context, now time.Time, horizon time.Duration) (int, error) {
	if horizon < 24*time.Hour {
		return 0, fmt.Errorf("ledger: retention %s shorter than one day", horizon)
	}
	cutoff := now.Add(-horizon)
	dropped := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLock)); err != nil {
			return err
		}
		existing := map[string]bool{}
		rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i
			JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
			JOIN pg_namespace n ON n.oid = p.relnamespace
			WHERE n.nspname = 'monitor' AND p.relname = 'webhook_events'`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			existing[name] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, day := range partitionDays(now, horizon) {
			if name := partitionName(day); !existing[name] {
				if err := createPartition(ctx, tx, name, day); err != nil {
					return fmt.Errorf("create partition %s: %w", name, err)
				}
			}
		}
		for name := range existing {
			day, ok := strings.CutPrefix(name, "webhook_events_p")
			if !ok {
				continue
			}
			start, err := time.Parse("20060102", day)
			if err != nil {
				continue
			}
			if !start.AddDate(0, 0, 1).After(cutoff) {
				if _, err := tx.Exec(ctx, "DROP TABLE monitor."+pgx.Identifier{name}.Sanitize()); err != nil {
					return fmt.Errorf("drop partition %s: %w", name, err)
				}
				dropped++
			}
		}
		for _, q := range []string{
			`DELETE FROM monitor.webhook_events_default WHERE received_at < $1`,
			`DELETE FROM monitor.deliveries WHERE updated_at < $1`,
			`DELETE FROM monitor.outcome_counts WHERE bucket < $1`,
			`DELETE FROM monitor.replays WHERE requested_at < $1`,
			`DELETE FROM monitor.alerts WHERE state = 'resolved' AND updated_at < $1`,
			`DELETE FROM monitor.last_seen WHERE last_received_at < $1`,
		} {
			if _, err := tx.Exec(ctx, q, cutoff); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: maintain partitions: %w", err)
	}
	return dropped, nil
}

// createPartition creates the partition for day. Rows of that day that
// landed in the default partition earlier (clock skew) are moved into it
// first, because PostgreSQL refuses to attach a range the default partition
// still holds rows of.
func createPartition(ctx context.Context, tx pgx.Tx, name string, day time.Time) error {
	lo, hi := day, day.AddDate(0, 0, 1)
	ident := "monitor." + pgx.Identifier{name}.Sanitize()
	stmts := []struct {
		sql  string
		args []any
	}{
		{`CREATE TABLE ` + ident + ` (LIKE monitor.webhook_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`, nil},
		{`INSERT INTO ` + ident + ` SELECT * FROM monitor.webhook_events_default WHERE received_at >= $1 AND received_at < $2`, []any{lo, hi}},
		{`DELETE FROM monitor.webhook_events_default WHERE received_at >= $1 AND received_at < $2`, []any{lo, hi}},
		{fmt.Sprintf(`ALTER TABLE monitor.webhook_events ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')`,
			ident, lo.Format(time.RFC3339), hi.Format(time.RFC3339)), nil},
	}
	for _, st := range stmts {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return err
		}
	}
	return nil
}
