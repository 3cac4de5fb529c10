package monitor_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/b24hub/b24hub/services/monitor/internal/alert"
	"github.com/b24hub/b24hub/services/monitor/internal/api"
)

// TestGonePortalsStopBeingWatched: three portals fall silent and their
// silence alerts fire; one is uninstalled (marked inactive in B24_PORTALS),
// one deleted from the bucket, one removed from the portals file. Each
// alert resolves, saying why, and the portal is no longer evaluated, while
// a portal that stays registered keeps firing.
func TestGonePortalsStopBeingWatched(t *testing.T) {
	file := filepath.Join(t.TempDir(), "portals.yaml")
	writePortals := func(members ...string) {
		var b strings.Builder
		b.WriteString("portals:\n")
		for _, m := range members {
			b.WriteString("  - {member_id: " + m + ", application_token: tok-" + m + ", domain: " + m + ".bitrix24.ru}\n")
		}
		if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePortals("f1")
	e := start(t, func(c *monitor.Config) { c.PortalsFile = file })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e.install(ctx, "m3", true)

	members := []string{"m1", "m2", "m3", "f1"}
	for _, m := range members {
		e.publishEvent(ctx, envelope("g-"+m, m, "ONCRMDEALUPDATE", "1", e.clock.Now(), eventsv1.Source_SOURCE_PUSH))
	}
	e.eventually("events recorded", 10*time.Second, func() bool {
		var n int
		return e.pool.QueryRow(ctx, "SELECT count(*) FROM monitor.webhook_events").Scan(&n) == nil && n == len(members)
	})
	e.clock.Advance(11 * time.Minute)
	key := func(m string) string { return "deal-update-silence/" + m }
	for _, m := range members {
		e.eventually(m+" firing", 10*time.Second, func() bool { return len(e.hook.states(key(m))) == 1 })
	}

	e.install(ctx, "m1", false) // ONAPPUNINSTALL
	e.forget(ctx, "m3")         // deleted from the bucket
	writePortals()              // f1 removed from the file
	for _, m := range []string{"m1", "m3", "f1"} {
		e.eventually(m+" resolved", 20*time.Second, func() bool {
			got := e.hook.states(key(m))
			return len(got) == 2 && got[1] == "resolved"
		})
	}
	var alerts struct{ Alerts []alert.Alert }
	if code := e.get("/api/v1/alerts?state=all", &alerts); code != http.StatusOK {
		t.Fatalf("alerts: %d", code)
	}
	for _, a := range alerts.Alerts {
		switch a.Target {
		case "m2":
			if a.State != alert.StateFiring {
				t.Errorf("registered portal m2: %+v", a)
			}
		default:
			if a.State != alert.StateResolved || !strings.Contains(a.Message, "no longer registered") {
				t.Errorf("gone portal %s: %+v", a.Target, a)
			}
		}
	}

	// Still quiet, still gone: never evaluated again, so never re-fired.
	e.clock.Advance(time.Hour)
	e.evaluated()
	for _, m := range []string{"m1", "m3", "f1"} {
		if got := e.hook.states(key(m)); len(got) != 2 {
			t.Errorf("%s notifications after removal: %v", m, got)
		}
	}
	var health struct{ Portals []api.PortalHealth }
	if code := e.get("/api/v1/portals", &health); code != http.StatusOK || len(health.Portals) != len(members) {
		t.Fatalf("health: %d %+v", code, health)
	}
	for _, p := range health.Portals {
		if want := p.Portal == "m2"; p.Watched != want || (len(p.Silence) > 0) != want {
			t.Errorf("health of %s: watched=%v silence=%+v", p.Portal, p.Watched, p.Silence)
		}
	}

	// Reinstalled: watched again.
	e.install(ctx, "m1", true)
	e.eventually("m1 firing again", 20*time.Second, func() bool {
		got := e.hook.states(key("m1"))
		return len(got) == 3 && got[2] == "firing"
	})
}
