package ingest

import (
	"context"
	"errors"
	"log/slog"

	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/jackc/pgx/v5/pgconn"
)

// Ledger is the part of ledger.Store the writers need.
type Ledger interface {
	WriteEvents(ctx context.Context, events []ledger.Event) (int, error)
	ApplyAttempts(ctx context.Context, attempts []ledger.Attempt) error
	ApplyDeadLetters(ctx context.Context, dead []ledger.DeadLetter) error
}

var _ Ledger = (*ledger.Store)(nil)

// isDataError reports whether err is PostgreSQL rejecting the data itself
// (data exception, integrity violation), which retrying cannot fix, as
// opposed to an unavailable database.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23":
		return true
	}
	return false
}

// isolate writes a batch that PostgreSQL rejected as data one message at a
// time, so one bad message cannot stall its consumer forever: the messages
// that still fail alone are logged with their ids and skipped.
func isolate[T any](ctx context.Context, log *slog.Logger, items []T, id func(T) string, write func([]T) error) error {
	for _, it := range items {
		if err := write([]T{it}); err != nil {
			if !isDataError(err) {
				return err
			}
			log.ErrorContext(ctx, "monitor skipped a message PostgreSQL rejects", "id", id(it), "error", err)
		}
	}
	return nil
}

// EventWriter records raw events.
func EventWriter(l Ledger, log *slog.Logger) WriteFunc {
	return func(ctx context.Context, batch []Raw) error {
		events := make([]ledger.Event, len(batch))
		for i, m := range batch {
			var ok bool
			if events[i], ok = DecodeEvent(m); !ok {
				log.WarnContext(ctx, "monitor recorded a raw event that is not an Envelope",
					"id", events[i].ID, "subject", m.Subject, "stream_seq", m.StreamSeq)
			}
		}
		write := func(es []ledger.Event) error { _, err := l.WriteEvents(ctx, es); return err }
		if err := write(events); err != nil {
			if !isDataError(err) {
				return err
			}
			return isolate(ctx, log, events, func(e ledger.Event) string { return e.ID }, write)
		}
		return nil
	}
}

// OutcomeWriter folds outcomes into deliveries.
func OutcomeWriter(l Ledger, log *slog.Logger) WriteFunc {
	return func(ctx context.Context, batch []Raw) error {
		attempts := make([]ledger.Attempt, 0, len(batch))
		for _, m := range batch {
			a, ok := DecodeOutcome(m)
			if !ok {
				log.WarnContext(ctx, "monitor ignored an undecodable outcome", "subject", m.Subject, "stream_seq", m.StreamSeq)
				continue
			}
			attempts = append(attempts, a)
		}
		write := func(as []ledger.Attempt) error { return l.ApplyAttempts(ctx, as) }
		if err := write(attempts); err != nil {
			if !isDataError(err) {
				return err
			}
			return isolate(ctx, log, attempts, func(a ledger.Attempt) string { return a.EventID }, write)
		}
		return nil
	}
}

// DeadWriter marks dead-lettered deliveries.
func DeadWriter(l Ledger, log *slog.Logger) WriteFunc {
	return func(ctx context.Context, batch []Raw) error {
		dead := make([]ledger.DeadLetter, 0, len(batch))
		for _, m := range batch {
			d, ok := DecodeDeadLetter(m)
			if !ok {
				log.WarnContext(ctx, "monitor ignored a dead letter without event id or consumer", "subject", m.Subject, "stream_seq", m.StreamSeq)
				continue
			}
			dead = append(dead, d)
		}
		write := func(ds []ledger.DeadLetter) error { return l.ApplyDeadLetters(ctx, ds) }
		if err := write(dead); err != nil {
			if !isDataError(err) {
				return err
			}
			return isolate(ctx, log, dead, func(d ledger.DeadLetter) string { return d.Event.ID }, write)
		}
		return nil
	}
}
