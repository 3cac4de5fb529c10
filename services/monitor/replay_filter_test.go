package monitor_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor/internal/api"
	"github.com/b24hub/b24hub/services/monitor/internal/replay"
)

// TestReplayByFilterDryRun: a dry run of a bulk replay by filter counts
// what the same request would replay and publishes nothing; the real
// request then replays exactly that many.
func TestReplayByFilterDryRun(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	now := e.clock.Now()
	for _, ev := range []*eventsv1.Envelope{
		envelope("f-1", "m1", "ONCRMDEALUPDATE", "1", now, eventsv1.Source_SOURCE_PUSH),
		envelope("f-2", "m1", "ONCRMDEALUPDATE", "2", now, eventsv1.Source_SOURCE_PUSH),
		envelope("f-3", "m1", "ONTASKADD", "3", now, eventsv1.Source_SOURCE_PUSH),
		envelope("f-4", "m2", "ONCRMDEALUPDATE", "4", now, eventsv1.Source_SOURCE_PUSH),
	} {
		e.publishEvent(ctx, ev)
	}
	e.eventually("events recorded", 10*time.Second, func() bool {
		var n int
		return e.pool.QueryRow(ctx, "SELECT count(*) FROM monitor.webhook_events").Scan(&n) == nil && n == 4
	})
	filter := &api.EventQuery{Portal: "m1", Type: "ONCRMDEALUPDATE", From: now.Add(-time.Minute), To: now.Add(time.Minute)}

	tests := []struct {
		name      string
		req       api.ReplayRequest
		want      []string
		truncated bool
	}{
		{"portal and type", api.ReplayRequest{Events: filter}, []string{"f-1", "f-2"}, false},
		{"limit", api.ReplayRequest{Events: filter, Limit: 1}, []string{"f-2"}, true},
		{"time range excludes", api.ReplayRequest{Events: &api.EventQuery{From: now.Add(time.Minute)}}, nil, false},
		{"one event", api.ReplayRequest{EventID: "f-3"}, []string{"f-3"}, false},
		{"one event at a consumer", api.ReplayRequest{EventID: "f-3", Consumer: "tasks"}, []string{"f-3"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.DryRun = true
			var plan replay.Plan
			if code := e.do(http.MethodPost, "/api/v1/replay", tt.req, &plan); code != http.StatusOK {
				t.Fatalf("dry run: %d", code)
			}
			slices.Sort(plan.EventIDs)
			if !plan.DryRun || plan.WouldReplay != len(tt.want) || !slices.Equal(plan.EventIDs, tt.want) && len(tt.want) > 0 ||
				plan.Truncated != tt.truncated {
				t.Errorf("plan = %+v, want %v truncated=%v", plan, tt.want, tt.truncated)
			}
			// Each event comes with the request that replays it alone.
			if len(plan.Targets) != plan.WouldReplay {
				t.Errorf("targets %+v for %d events", plan.Targets, plan.WouldReplay)
			}
			for _, tg := range plan.Targets {
				if tg.Consumer != tt.req.Consumer {
					t.Errorf("target %+v: want consumer %q", tg, tt.req.Consumer)
				}
			}
		})
	}
	if code := e.do(http.MethodPost, "/api/v1/replay", api.ReplayRequest{EventID: "nope", DryRun: true}, nil); code != http.StatusNotFound {
		t.Errorf("dry run of an unknown event: %d", code)
	}
	var replays int
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM monitor.replays").Scan(&replays); err != nil || replays != 0 {
		t.Fatalf("dry runs recorded %d replays (%v)", replays, err)
	}
	if info, err := e.js.Stream(ctx, eventbus.StreamEvents); err != nil || info.CachedInfo().State.Msgs != 4 {
		t.Fatalf("dry runs published: %v", err)
	}

	var res replay.Result
	if code := e.do(http.MethodPost, "/api/v1/replay", api.ReplayRequest{Events: filter}, &res); code != http.StatusAccepted || len(res.Replayed) != 2 {
		t.Fatalf("replay: %d %+v", code, res)
	}
}

// TestLifecycleEventsAreNeverReplayed: replaying an old ONAPPUNINSTALL
// would uninstall a portal installed again since (and delete its
// credentials), so lifecycle events are refused one by one (422 with the
// reason) and left out of bulk replays, dry run or not, which name them.
func TestLifecycleEventsAreNeverReplayed(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	now := e.clock.Now()
	for _, ev := range []*eventsv1.Envelope{
		envelope("l-1", "m1", "ONAPPINSTALL", "", now.Add(-2*time.Minute), eventsv1.Source_SOURCE_PUSH),
		envelope("l-2", "m1", "ONAPPUNINSTALL", "", now.Add(-time.Minute), eventsv1.Source_SOURCE_PUSH),
		envelope("l-3", "m1", "ONCRMDEALUPDATE", "3", now, eventsv1.Source_SOURCE_PUSH),
	} {
		e.publishEvent(ctx, ev)
	}
	e.eventually("events recorded", 10*time.Second, func() bool {
		var n int
		return e.pool.QueryRow(ctx, "SELECT count(*) FROM monitor.webhook_events").Scan(&n) == nil && n == 3
	})
	for _, id := range []string{"l-1", "l-2"} {
		for _, dry := range []bool{true, false} {
			var body map[string]any
			if code := e.do(http.MethodPost, "/api/v1/replay", api.ReplayRequest{EventID: id, DryRun: dry}, &body); code != http.StatusUnprocessableEntity {
				t.Errorf("replay of %s (dry run %v): %d %v, want 422", id, dry, code, body)
			}
		}
	}
	portal := &api.EventQuery{Portal: "m1", From: now.Add(-time.Hour), To: now.Add(time.Minute)}
	var plan replay.Plan
	if code := e.do(http.MethodPost, "/api/v1/replay", api.ReplayRequest{Events: portal, DryRun: true}, &plan); code != http.StatusOK ||
		plan.WouldReplay != 1 || !slices.Equal(plan.EventIDs, []string{"l-3"}) || len(plan.Refused) != 2 {
		t.Fatalf("dry run by portal: %d %+v", code, plan)
	}
	var res replay.Result
	if code := e.do(http.MethodPost, "/api/v1/replay", api.ReplayRequest{Events: portal}, &res); code != http.StatusAccepted ||
		len(res.Replayed) != 1 || res.Replayed[0].OriginalID != "l-3" || len(res.Refused) != 2 {
		t.Fatalf("replay by portal: %d %+v", code, res)
	}
	if info, err := e.js.Stream(ctx, eventbus.StreamEvents); err != nil || info.CachedInfo().State.Msgs != 4 {
		t.Fatalf("stream after replays: %v, want the 3 events and one replay", err)
	}
}
