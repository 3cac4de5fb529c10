package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Alert states.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Alert is the persisted state of one rule instance.
type Alert struct {
	Key        string     `json:"key"`
	Rule       string     `json:"rule"`
	Kind       string     `json:"kind"`
	Target     string     `json:"target"`
	State      string     `json:"state"`
	Message    string     `json:"message"`
	Value      float64    `json:"value"`
	StartedAt  time.Time  `json:"started_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	UpdatedAt  time.Time  `json:"updated_at"`
	// Notified maps a sink name to the state last delivered to it; a sink
	// is sent the alert until it has its current state.
	Notified map[string]string `json:"notified"`
}

// Transition applies an observation to the previous state of its alert. It
// returns the next state and whether it must be stored. A firing alert
// stays one alert (StartedAt kept, no new notification) while it keeps
// firing; a resolved alert that fires again starts anew. An observation
// that is not firing creates nothing.
func Transition(prev *Alert, o Observation, now time.Time) (Alert, bool) {
	switch {
	case o.Firing && (prev == nil || prev.State != StateFiring):
		a := Alert{Key: o.Key, Rule: o.Rule, Kind: o.Kind, Target: o.Target, State: StateFiring, Message: o.Message,
			Value: o.Value, StartedAt: now, UpdatedAt: now, Notified: map[string]string{}}
		if prev != nil {
			a.Notified = prev.Notified
		}
		return a, true
	case o.Firing:
		a := *prev
		a.Message, a.Value, a.UpdatedAt = o.Message, o.Value, now
		return a, true
	case prev != nil && prev.State == StateFiring:
		return resolve(*prev, o.Message, o.Value, now), true
	}
	return Alert{}, false
}

func resolve(a Alert, msg string, value float64, now time.Time) Alert {
	a.State, a.Message, a.Value, a.UpdatedAt = StateResolved, msg, value, now
	a.ResolvedAt = &now
	return a
}

// Store keeps alert state in monitor.alerts.
type Store struct{ pool *pgxpool.Pool }

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// List returns alerts, firing first then newest; with firingOnly only the
// firing ones. limit <= 0 means 500.
func (s *Store) List(ctx context.Context, firingOnly bool, limit int) ([]Alert, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.pool.Query(ctx, `SELECT key, rule, kind, target, state, message, value, started_at, resolved_at,
		updated_at, notified FROM monitor.alerts WHERE NOT $1 OR state = 'firing'
		ORDER BY state = 'firing' DESC, updated_at DESC LIMIT $2`, firingOnly, limit)
	if err != nil {
		return nil, fmt.Errorf("alert: list: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Alert, error) {
		var (
			a        Alert
			resolved pgtype.Timestamptz
			notified []byte
		)
		if err := row.Scan(&a.Key, &a.Rule, &a.Kind, &a.Target, &a.State, &a.Message, &a.Value, &a.StartedAt,
			&resolved, &a.UpdatedAt, &notified); err != nil {
			return a, err
		}
		a.StartedAt, a.UpdatedAt = a.StartedAt.UTC(), a.UpdatedAt.UTC()
		if resolved.Valid {
			t := resolved.Time.UTC()
			a.ResolvedAt = &t
		}
		a.Notified = map[string]string{}
		return a, json.Unmarshal(notified, &a.Notified)
	})
	if err != nil {
		return nil, fmt.Errorf("alert: list: %w", err)
	}
	return out, nil
}

// Save upserts alerts.
func (s *Store) Save(ctx context.Context, alerts []Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, a := range alerts {
		notified, err := json.Marshal(a.Notified)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO monitor.alerts (key, rule, kind, target, state, message, value, started_at, resolved_at, updated_at, notified)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
			ON CONFLICT (key) DO UPDATE SET rule = EXCLUDED.rule, kind = EXCLUDED.kind, target = EXCLUDED.target,
				state = EXCLUDED.state, message = EXCLUDED.message, value = EXCLUDED.value, started_at = EXCLUDED.started_at,
				resolved_at = EXCLUDED.resolved_at, updated_at = EXCLUDED.updated_at, notified = EXCLUDED.notified`,
			a.Key, a.Rule, a.Kind, a.Target, a.State, a.Message, a.Value, a.StartedAt, a.ResolvedAt, a.UpdatedAt, notified)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("alert: save: %w", err)
	}
	return nil
}
