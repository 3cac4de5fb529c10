package monitor_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/chromedp/chromedp"
)

// chromium finds the browser: $B24HUB_CHROMIUM, else Debian's chromium on
// the PATH. Under CI=true a missing browser fails the test; elsewhere it
// skips.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("B24HUB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required under CI=true: apt-get install -y chromium")
	}
	t.Skip("chromium not installed (apt-get install -y chromium); set B24HUB_CHROMIUM to use another")
	return ""
}

// TestDashboardInBrowser drives the dashboard in headless Chromium: sign
// in with the token form, see portal health, throughput, errors and a dead
// letter, open an event with its deliveries, click Replay and watch the
// replay end "done".
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	e.fakeConsumer("deal-sync")
	e.publishEvent(ctx, envelope("ev-ok", "m1", "ONCRMDEALUPDATE", "42", e.clock.Now(), eventsv1.Source_SOURCE_PUSH))
	e.publishOutcome(ctx, "ev-ok", "deal-sync", "m1", eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, 1, "", "")
	e.publishEvent(ctx, envelope("ev-task", "m1", "ONTASKADD", "9", e.clock.Now(), eventsv1.Source_SOURCE_OFFLINE))
	e.publishOutcome(ctx, "ev-task", "tasks", "m1", eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, 1, "QUERY_LIMIT_EXCEEDED", "query_limit")
	dead := envelope("ev-dead", "m1", "ONCRMDEALUPDATE", "43", e.clock.Now(), eventsv1.Source_SOURCE_PUSH)
	e.publishEvent(ctx, dead)
	e.publishDead(ctx, dead, "deal-sync", "max_deliveries", "portal said 500")
	e.eventually("ledger filled", 10*time.Second, func() bool {
		var n int
		return e.pool.QueryRow(ctx, "SELECT count(*) FROM monitor.deliveries").Scan(&n) == nil && n == 3
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1600),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	var loginText string
	if err := chromedp.Run(bctx,
		chromedp.Navigate(e.base+"/"),
		chromedp.WaitVisible("#login"),
		chromedp.Text("#login", &loginText),
		chromedp.SendKeys("#token", e.svc.Token()),
		chromedp.Submit("#login"),
		chromedp.WaitVisible(`body[data-loaded="true"]`),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if !strings.Contains(loginText, "API token") {
		t.Errorf("login page shows %q", loginText)
	}

	var health, errorsText, deadText string
	var series int
	if err := chromedp.Run(bctx,
		chromedp.WaitVisible(`#health tr[data-portal="m1"][data-event="ONCRMDEALUPDATE"]`),
		chromedp.Text("#health", &health),
		chromedp.WaitVisible(`#throughput svg polyline[data-series="ONCRMDEALUPDATE"]`),
		chromedp.Evaluate(`document.querySelectorAll("#throughput polyline").length`, &series),
		chromedp.Text("#errors", &errorsText),
		chromedp.WaitVisible(`#dead tr[data-event="ev-dead"] button.replay`),
		chromedp.Text("#dead", &deadText),
	); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if !strings.Contains(health, "m1.bitrix24.ru") || !strings.Contains(health, "ONTASKADD") {
		t.Errorf("health shows %q", health)
	}
	if series != 2 {
		t.Errorf("throughput chart has %d series, want 2", series)
	}
	if !strings.Contains(errorsText, "QUERY_LIMIT_EXCEEDED") || !strings.Contains(errorsText, "portal said 500") {
		t.Errorf("recent errors show %q", errorsText)
	}
	if !strings.Contains(deadText, "max_deliveries") {
		t.Errorf("dead letters show %q", deadText)
	}

	// The event search lists events; a click shows the deliveries and trace.
	var deliveries string
	if err := chromedp.Run(bctx,
		chromedp.WaitVisible(`#events tr[data-event="ev-ok"]`),
		chromedp.Click(`#events tr[data-event="ev-ok"]`),
		chromedp.WaitVisible(`[data-testid="deliveries"] tr[data-consumer="deal-sync"]`),
		chromedp.Text(`[data-testid="deliveries"]`, &deliveries),
	); err != nil {
		t.Fatalf("event detail: %v", err)
	}
	if !strings.Contains(deliveries, "done") {
		t.Errorf("deliveries show %q", deliveries)
	}

	// Replay the dead letter; the fake consumer completes it.
	var replayText string
	if err := chromedp.Run(bctx,
		chromedp.Click(`#dead tr[data-event="ev-dead"] button.replay`),
		chromedp.WaitVisible(`#dead tr[data-event="ev-dead"] .replay-status [data-status="done"]`),
		chromedp.Text(`#dead tr[data-event="ev-dead"]`, &replayText),
	); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !strings.Contains(replayText, "ev-dead-r") {
		t.Errorf("replay row shows %q", replayText)
	}
	if dir := os.Getenv("B24HUB_SCREENSHOT_DIR"); dir != "" {
		var png []byte
		if err := chromedp.Run(bctx, chromedp.FullScreenshot(&png, 100)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "monitor-dashboard.png"), png, 0o644)
		}
	}
}
