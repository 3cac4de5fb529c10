package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store reads and writes the ledger tables in the "monitor" schema. It is
// safe for concurrent use and for several monitor replicas on one database.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store on pool. The schema must be migrated
// (schema.Migrate) before any call.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Ping reports whether PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// outcomeLock is the transaction advisory lock that serialises folding of
// outcomes and dead letters across replicas, so two writers never fold the
// same new delivery row from different starting points.
const outcomeLock = 0x6232346d6f6e // "b24mon"

func tstz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// WriteEvents records events in one transaction and returns how many were
// new. Events already recorded (same id and received_at) are skipped, so
// writing a batch again is a no-op. last_seen is advanced only by new rows.
func (s *Store) WriteEvents(ctx context.Context, events []Event) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		n, err = writeEvents(ctx, tx, events)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: write %d events: %w", len(events), err)
	}
	return n, nil
}

const insertEventsSQL = `
WITH ins AS (
	INSERT INTO monitor.webhook_events (id, portal, domain, event_type, entity_id, source, replay_of,
		received_at, event_ts, trace_id, handler_id, route, client_endpoint, content_type, payload, stream_seq)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
		$8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
		$15::bytea[], $16::bigint[])
	ON CONFLICT DO NOTHING
	RETURNING id, portal, domain, event_type, source, received_at
), agg AS (
	SELECT portal, event_type, source,
		(array_agg(domain ORDER BY received_at DESC))[1] AS domain,
		max(received_at) AS last_received_at,
		(array_agg(id ORDER BY received_at DESC))[1] AS last_event_id,
		count(*) AS total
	FROM ins GROUP BY portal, event_type, source
), seen AS (
	INSERT INTO monitor.last_seen AS l (portal, event_type, source, domain, last_received_at, last_event_id, total)
	SELECT * FROM agg ORDER BY portal, event_type, source
	ON CONFLICT (portal, event_type, source) DO UPDATE SET
		domain = CASE WHEN EXCLUDED.last_received_at >= l.last_received_at THEN EXCLUDED.domain ELSE l.domain END,
		last_event_id = CASE WHEN EXCLUDED.last_received_at >= l.last_received_at THEN EXCLUDED.last_event_id ELSE l.last_event_id END,
		last_received_at = GREATEST(l.last_received_at, EXCLUDED.last_received_at),
		total = l.total + EXCLUDED.total
)
SELECT count(*) FROM ins`

func writeEvents(ctx context.Context, tx pgx.Tx, events []Event) (int, error) {
	n := len(events)
	var (
		ids, portals, domains, types, entities, sources, replayOf = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		received, eventTS                                         = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		traces, handlers, routes, endpoints, ctypes               = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		payloads                                                  = make([][]byte, n)
		seqs                                                      = make([]int64, n)
	)
	for i, e := range events {
		if e.ReceivedAt.IsZero() {
			return 0, fmt.Errorf("event %s has no received_at", e.ID)
		}
		ids[i], portals[i], domains[i], types[i], entities[i], sources[i], replayOf[i] =
			e.ID, e.Portal, e.Domain, e.EventType, e.EntityID, e.Source, e.ReplayOf
		received[i], eventTS[i] = tstz(e.ReceivedAt), tstz(e.EventTS)
		traces[i], handlers[i], routes[i], endpoints[i], ctypes[i] = e.TraceID, e.HandlerID, e.Route, e.ClientEndpoint, e.ContentType
		payloads[i], seqs[i] = e.Payload, int64(e.StreamSeq)
	}
	var inserted int
	err := tx.QueryRow(ctx, insertEventsSQL, ids, portals, domains, types, entities, sources, replayOf,
		received, eventTS, traces, handlers, routes, endpoints, ctypes, payloads, seqs).Scan(&inserted)
	return inserted, err
}

// InsertEventSingle records one event with a plain INSERT in its own
// transaction. It exists only as the baseline the batched path is measured
// against (BenchmarkIngest); the monitor never uses it.
func (s *Store) InsertEventSingle(ctx context.Context, e Event) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO monitor.webhook_events (id, portal, domain, event_type, entity_id, source,
		replay_of, received_at, event_ts, trace_id, handler_id, route, client_endpoint, content_type, payload, stream_seq)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) ON CONFLICT DO NOTHING`,
		e.ID, e.Portal, e.Domain, e.EventType, e.EntityID, e.Source, e.ReplayOf, e.ReceivedAt, tstz(e.EventTS),
		e.TraceID, e.HandlerID, e.Route, e.ClientEndpoint, e.ContentType, e.Payload, int64(e.StreamSeq))
	return err
}

// ApplyAttempts folds consumer outcomes into their delivery rows and the
// per-minute counts, in one transaction. Applying the same attempts again
// changes nothing.
func (s *Store) ApplyAttempts(ctx context.Context, attempts []Attempt) error {
	if len(attempts) == 0 {
		return nil
	}
	keys := make([]deliveryKey, len(attempts))
	for i, a := range attempts {
		keys[i] = deliveryKey{a.EventID, a.Consumer}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		existing, err := lockDeliveries(ctx, tx, keys)
		if err != nil {
			return err
		}
		rows, counts := fold(existing, attempts, nil)
		return writeDeliveries(ctx, tx, rows, counts)
	})
	if err != nil {
		return fmt.Errorf("ledger: apply %d outcomes: %w", len(attempts), err)
	}
	return nil
}

// ApplyDeadLetters records the original events carried by dead letters (when
// new) and marks their delivery rows dead, in one transaction. Applying the
// same dead letters again changes nothing.
func (s *Store) ApplyDeadLetters(ctx context.Context, dead []DeadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	keys := make([]deliveryKey, len(dead))
	events := make([]Event, 0, len(dead))
	for i, d := range dead {
		keys[i] = deliveryKey{d.Event.ID, d.Consumer}
		if !d.Event.ReceivedAt.IsZero() {
			events = append(events, d.Event)
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(events) > 0 {
			if _, err := writeEvents(ctx, tx, events); err != nil {
				return err
			}
		}
		existing, err := lockDeliveries(ctx, tx, keys)
		if err != nil {
			return err
		}
		rows, counts := fold(existing, nil, dead)
		return writeDeliveries(ctx, tx, rows, counts)
	})
	if err != nil {
		return fmt.Errorf("ledger: apply %d dead letters: %w", len(dead), err)
	}
	return nil
}

const deliveryColumns = `event_id, consumer, portal, event_type, entity_id, status, attempts, last_error, error_kind,
	first_attempt_at, last_attempt_at, duration_ms, trace_id, dead_reason, dead_at, dead_stream_seq`

// lockDeliveries takes the outcome lock and reads (FOR UPDATE) the existing
// rows of keys.
func lockDeliveries(ctx context.Context, tx pgx.Tx, keys []deliveryKey) (map[deliveryKey]*deliveryRow, error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(outcomeLock)); err != nil {
		return nil, err
	}
	evs, cons := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		evs[i], cons[i] = k.EventID, k.Consumer
	}
	// Planned for each call (an unnamed statement), not once per
	// connection: the generic plan PostgreSQL keeps after five executions
	// is the one that was cheapest when the table was small (a hash join
	// over a sequential scan), and without a new ANALYZE of the table it
	// stays, costing 10 ms a call at 60,000 rows against 0.1 ms for the
	// index lookups a fresh plan makes (tools/bench e2e, docs/benchmarks.md).
	rows, err := tx.Query(ctx, `SELECT `+deliveryColumns+` FROM monitor.deliveries
		WHERE (event_id, consumer) IN (SELECT * FROM unnest($1::text[], $2::text[]))
		ORDER BY event_id, consumer FOR UPDATE`, pgx.QueryExecModeCacheDescribe, evs, cons)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[deliveryKey]*deliveryRow{}
	for rows.Next() {
		var (
			r                   deliveryRow
			first, last, deadAt pgtype.Timestamptz
			deadSeq             pgtype.Int8
		)
		if err := rows.Scan(&r.EventID, &r.Consumer, &r.Portal, &r.EventType, &r.EntityID, &r.Status, &r.Attempts,
			&r.LastError, &r.ErrorKind, &first, &last, &r.DurationMS, &r.TraceID, &r.DeadReason, &deadAt, &deadSeq); err != nil {
			return nil, err
		}
		r.FirstAt, r.LastAt, r.DeadAt, r.DeadSeq = first.Time, last.Time, deadAt.Time, uint64(deadSeq.Int64)
		out[r.deliveryKey] = &r
	}
	return out, rows.Err()
}

func writeDeliveries(ctx context.Context, tx pgx.Tx, rows []*deliveryRow, counts map[countKey]int64) error {
	n := len(rows)
	var (
		evs, cons, portals, types, entities, statuses = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		attempts                                      = make([]int32, n)
		errs, kinds, traces, reasons                  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		first, last, deadAt                           = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		durations                                     = make([]float64, n)
		seqs                                          = make([]pgtype.Int8, n)
	)
	for i, r := range rows {
		evs[i], cons[i], portals[i], types[i], entities[i], statuses[i] = r.EventID, r.Consumer, r.Portal, r.EventType, r.EntityID, r.Status
		attempts[i], errs[i], kinds[i], traces[i], reasons[i] = int32(r.Attempts), r.LastError, r.ErrorKind, r.TraceID, r.DeadReason
		first[i], last[i], deadAt[i], durations[i] = tstz(r.FirstAt), tstz(r.LastAt), tstz(r.DeadAt), r.DurationMS
		seqs[i] = pgtype.Int8{Int64: int64(r.DeadSeq), Valid: r.DeadSeq != 0}
	}
	_, err := tx.Exec(ctx, `INSERT INTO monitor.deliveries (`+deliveryColumns+`, updated_at)
		SELECT *, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
			$8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::float8[], $13::text[], $14::text[],
			$15::timestamptz[], $16::bigint[])
		ON CONFLICT (event_id, consumer) DO UPDATE SET
			portal = EXCLUDED.portal, event_type = EXCLUDED.event_type, entity_id = EXCLUDED.entity_id,
			status = EXCLUDED.status, attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error,
			error_kind = EXCLUDED.error_kind, first_attempt_at = EXCLUDED.first_attempt_at,
			last_attempt_at = EXCLUDED.last_attempt_at, duration_ms = EXCLUDED.duration_ms,
			trace_id = EXCLUDED.trace_id, dead_reason = EXCLUDED.dead_reason, dead_at = EXCLUDED.dead_at,
			dead_stream_seq = EXCLUDED.dead_stream_seq, updated_at = now()`,
		evs, cons, portals, types, entities, statuses, attempts, errs, kinds, first, last, durations, traces, reasons, deadAt, seqs)
	if err != nil {
		return err
	}
	if len(counts) == 0 {
		return nil
	}
	var (
		buckets                            []time.Time
		ccons, cportals, ckinds, cerrkinds []string
		ns                                 []int64
	)
	for k, v := range counts {
		buckets = append(buckets, k.Bucket)
		ccons, cportals, ckinds, cerrkinds = append(ccons, k.Consumer), append(cportals, k.Portal), append(ckinds, k.Kind), append(cerrkinds, k.ErrKind)
		ns = append(ns, v)
	}
	_, err = tx.Exec(ctx, `INSERT INTO monitor.outcome_counts AS c (bucket, consumer, portal, kind, error_kind, n)
		SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
		ORDER BY 1, 2, 3, 4, 5
		ON CONFLICT (bucket, consumer, portal, kind, error_kind) DO UPDATE SET n = c.n + EXCLUDED.n`,
		buckets, ccons, cportals, ckinds, cerrkinds, ns)
	return err
}

// ErrNotFound is returned by lookups of an id that is not in the ledger.
var ErrNotFound = errors.New("ledger: not found")
