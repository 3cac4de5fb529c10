package replay

import (
	"context"

	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
)

// Plan is what a bulk replay would do: the events it would republish, in
// the order it would republish them. A dry run returns it without
// publishing anything; a real bulk replay executes the same plan, so the
// count an operator confirms is the count that runs.
type Plan struct {
	// DryRun is always true in an answer to a dry run.
	DryRun bool `json:"dry_run"`
	// WouldReplay is how many events the replay would republish.
	WouldReplay int `json:"would_replay"`
	// EventIDs are those events' ids.
	EventIDs []string `json:"event_ids"`
	// Targets pairs each of those events with the consumer its replay is
	// tracked at (empty: none), so a client can run the plan one event
	// replay at a time: b24ctl does, to show progress and to stop between
	// two events on Ctrl-C.
	Targets []Target `json:"targets"`
	// Skipped are dead letters a replay would leave alone because a replay
	// of them is already pending or done (unless force).
	Skipped []string `json:"skipped,omitempty"`
	// Refused are lifecycle events the filter matched: a replay never
	// republishes them (ErrLifecycle).
	Refused []string `json:"refused,omitempty"`
	// Truncated is true when more matched than Limit: the replay would
	// stop at Limit.
	Truncated bool `json:"truncated"`
	// Limit is the effective limit (the request's, capped by
	// B24HUB_MONITOR_REPLAY_MAX).
	Limit int `json:"limit"`

	items []planItem
}

type planItem struct{ eventID, consumer string }

// Target is one event replay of a Plan: the request
// {"event_id": EventID, "consumer": Consumer} replays it alone.
type Target struct {
	EventID  string `json:"event_id"`
	Consumer string `json:"consumer,omitempty"`
}

func (p *Plan) add(eventID, consumer string) {
	p.items = append(p.items, planItem{eventID, consumer})
	p.EventIDs = append(p.EventIDs, eventID)
	p.Targets = append(p.Targets, Target{EventID: eventID, Consumer: consumer})
	p.WouldReplay++
}

// PlanOne checks that One could replay the event id, without publishing.
// It returns ledger.ErrNotFound for an unknown id and ErrNotReplayable for
// an event that cannot be rebuilt.
func (r *Replayer) PlanOne(ctx context.Context, id, consumer string) (Plan, error) {
	e, err := r.store.GetEvent(ctx, id)
	if err != nil {
		return Plan{}, err
	}
	if err := replayable(e); err != nil {
		return Plan{}, err
	}
	p := Plan{Limit: 1, EventIDs: []string{}, Targets: []Target{}}
	p.add(e.ID, consumer)
	return p, nil
}

// PlanEvents selects the events matching f that Events would replay (at
// most limit, capped by the replayer's maximum), without publishing.
func (r *Replayer) PlanEvents(ctx context.Context, f ledger.EventFilter, limit int) (Plan, error) {
	limit = r.limit(limit)
	p := Plan{Limit: limit, EventIDs: []string{}, Targets: []Target{}}
	// The ledger answers at most ledger.MaxPage events a page: walk the
	// pages, so a limit above it is honoured and Truncated is exact.
	f.Cursor = ""
	for seen := 0; ; {
		f.Limit = min(limit-seen, ledger.MaxPage)
		page, err := r.store.SearchEvents(ctx, f)
		if err != nil {
			return Plan{}, err
		}
		for _, e := range page.Events {
			seen++
			if Lifecycle(e.EventType) {
				p.Refused = append(p.Refused, e.ID)
				continue
			}
			p.add(e.ID, f.Consumer)
		}
		if page.NextCursor == "" {
			return p, nil
		}
		if seen >= limit {
			p.Truncated = true
			return p, nil
		}
		f.Cursor = page.NextCursor
	}
}

// PlanDeadLetters selects the dead letters matching f that DeadLetters
// would replay (at most limit, capped by the replayer's maximum), without
// publishing. It walks the ledger a page (ledger.MaxPage) at a time, so a
// limit above a page is honoured and Truncated is exact. Dead letters whose
// newest replay is pending or done are skipped unless force.
func (r *Replayer) PlanDeadLetters(ctx context.Context, f ledger.DeliveryFilter, limit int, force bool) (Plan, error) {
	limit = r.limit(limit)
	f.DeadOnly = true
	f.After = ledger.DeliveryKey{}
	p := Plan{Limit: limit, EventIDs: []string{}, Targets: []Target{}}
	for seen := 0; ; {
		// One row beyond the limit tells whether there are more.
		f.Limit = min(limit+1-seen, ledger.MaxPage)
		rows, err := r.store.DeadLetters(ctx, f)
		if err != nil {
			return Plan{}, err
		}
		for _, d := range rows {
			if seen == limit {
				p.Truncated = true
				return p, nil
			}
			seen++
			switch {
			case Lifecycle(d.EventType):
				p.Refused = append(p.Refused, d.EventID)
			case !force && d.Replay != nil && d.Replay.Status != ledger.StatusDead && d.Replay.Status != ledger.StatusError:
				p.Skipped = append(p.Skipped, d.EventID)
			default:
				p.add(d.EventID, d.Consumer)
			}
		}
		if len(rows) < f.Limit {
			return p, nil
		}
		f.After = rows[len(rows)-1].Key(f)
	}
}
