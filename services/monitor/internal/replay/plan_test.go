package replay_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/b24hub/b24hub/services/monitor/internal/replay"
)

// pagedStore pages events as the ledger does: at most ledger.MaxPage a
// page, the rest behind a cursor.
type pagedStore struct {
	events []ledger.Event
	dead   []ledger.DeadLetterRow
}

func (s *pagedStore) GetEvent(context.Context, string) (ledger.Event, error) {
	return ledger.Event{}, ledger.ErrNotFound
}

func (s *pagedStore) SearchEvents(_ context.Context, f ledger.EventFilter) (ledger.EventPage, error) {
	limit := min(f.Limit, ledger.MaxPage)
	if limit <= 0 {
		limit = 50
	}
	from := 0
	if f.Cursor != "" {
		from, _ = strconv.Atoi(f.Cursor)
	}
	to := min(from+limit, len(s.events))
	page := ledger.EventPage{Events: s.events[from:to]}
	if to < len(s.events) {
		page.NextCursor = strconv.Itoa(to)
	}
	return page, nil
}

// DeadLetters pages as the ledger does: at most ledger.MaxPage rows, after
// the keyset f.After.
func (s *pagedStore) DeadLetters(_ context.Context, f ledger.DeliveryFilter) ([]ledger.DeadLetterRow, error) {
	from := 0
	if f.After.EventID != "" {
		for i, d := range s.dead {
			if d.EventID == f.After.EventID && d.Consumer == f.After.Consumer {
				from = i + 1
			}
		}
	}
	return s.dead[from:min(from+min(f.Limit, ledger.MaxPage), len(s.dead))], nil
}

func (s *pagedStore) RecordReplay(context.Context, ledger.Replay) error { return nil }

func (s *pagedStore) Deliveries(context.Context, string) ([]ledger.Delivery, error) { return nil, nil }

func events(n int, lifecycleEvery int) []ledger.Event {
	out := make([]ledger.Event, n)
	for i := range out {
		out[i] = ledger.Event{ID: fmt.Sprintf("e%d", i), Portal: "m1", EventType: "ONCRMDEALUPDATE"}
		if lifecycleEvery > 0 && i%lifecycleEvery == 0 {
			out[i].EventType = "ONAPPUNINSTALL"
		}
	}
	return out
}

// TestPlanEventsCountsPastOneLedgerPage: the dry-run count and the
// truncation flag are exact at and beyond the ledger's page size.
func TestPlanEventsCountsPastOneLedgerPage(t *testing.T) {
	tests := []struct {
		name                string
		matched, max, limit int
		lifecycleEvery      int
		want, refused       int
		truncated           bool
	}{
		{"exactly the default maximum", 1000, 1000, 0, 0, 1000, 0, false},
		{"one more than the maximum", 1001, 1000, 0, 0, 1000, 0, true},
		{"a limit above one page", 2500, 5000, 1200, 0, 1200, 0, true},
		{"everything over several pages", 2500, 5000, 0, 0, 2500, 0, false},
		{"small limit", 10, 1000, 3, 0, 3, 0, true},
		{"lifecycle events refused, within the limit", 10, 1000, 0, 5, 8, 2, false},
		{"none", 0, 1000, 0, 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replay.New(&pagedStore{events: events(tt.matched, tt.lifecycleEvery)}, nil, tt.max, nil)
			p, err := r.PlanEvents(context.Background(), ledger.EventFilter{}, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if p.WouldReplay != tt.want || len(p.EventIDs) != tt.want || len(p.Refused) != tt.refused || p.Truncated != tt.truncated {
				t.Errorf("would_replay=%d ids=%d refused=%d truncated=%v, want %d %d %v",
					p.WouldReplay, len(p.EventIDs), len(p.Refused), p.Truncated, tt.want, tt.refused, tt.truncated)
			}
		})
	}
}

// TestPlanDeadLettersPagesThroughTheLedger: a bulk dead-letter replay is not
// capped by the ledger's page size: an outage's whole backlog is planned
// (and replayed) in one request, and Truncated is exact.
func TestPlanDeadLettersPagesThroughTheLedger(t *testing.T) {
	rows := func(n int) []ledger.DeadLetterRow {
		out := make([]ledger.DeadLetterRow, n)
		for i := range out {
			out[i].EventID, out[i].Consumer, out[i].EventType = fmt.Sprintf("d%d", i), "deal-sync", "ONCRMDEALUPDATE"
		}
		return out
	}
	tests := []struct {
		name          string
		n, max, limit int
		want          int
		truncated     bool
	}{
		{"fewer than the limit", 10, 1000, 0, 10, false},
		{"more than a small limit", 10, 1000, 4, 4, true},
		{"exactly the maximum, one full ledger page", 1000, 1000, 0, 1000, false},
		{"one more than the maximum", 1001, 1000, 0, 1000, true},
		{"several ledger pages, all", 2500, 5000, 0, 2500, false},
		{"a limit above one page", 2500, 5000, 1200, 1200, true},
		{"the default maximum", 3001, 0, 0, 3001, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replay.New(&pagedStore{dead: rows(tt.n)}, nil, tt.max, nil)
			p, err := r.PlanDeadLetters(context.Background(), ledger.DeliveryFilter{}, tt.limit, false)
			if err != nil {
				t.Fatal(err)
			}
			if p.WouldReplay != tt.want || p.Truncated != tt.truncated {
				t.Errorf("would_replay=%d truncated=%v, want %d %v", p.WouldReplay, p.Truncated, tt.want, tt.truncated)
			}
			seen := map[string]bool{}
			for _, id := range p.EventIDs {
				if seen[id] {
					t.Fatalf("%s planned twice", id)
				}
				seen[id] = true
			}
		})
	}
}
