package monitor_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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

	bctx := signIn(t, ctx, exe, e)

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

// signIn starts headless Chromium, signs in to e's dashboard with the token
// form and waits for the first refresh.
func signIn(t *testing.T, ctx context.Context, exe string, e *env) context.Context {
	t.Helper()
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
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
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
	return bctx
}

// TestDashboardSearchAndReplayInBrowser drives the event search filters
// (portal, type, status, time range), bulk replay by filter with its
// dry-run count and confirmation, an event's page (deliveries per consumer,
// trace link, #event= address) and "Replay this event" in headless Chromium.
func TestDashboardSearchAndReplayInBrowser(t *testing.T) {
	exe := chromium(t)
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	now := e.clock.Now()
	tp := sdktrace.NewTracerProvider()
	traced, span := tp.Tracer("test").Start(ctx, "ingress")
	traceID := span.SpanContext().TraceID().String()
	e.publishEvent(traced, envelope("ev-a", "m1", "ONCRMDEALUPDATE", "1", now, eventsv1.Source_SOURCE_PUSH))
	span.End()
	e.publishEvent(ctx, envelope("ev-b", "m1", "ONCRMDEALUPDATE", "2", now, eventsv1.Source_SOURCE_PUSH))
	e.publishEvent(ctx, envelope("ev-c", "m2", "ONCRMDEALUPDATE", "3", now, eventsv1.Source_SOURCE_PUSH))
	e.publishEvent(ctx, envelope("ev-d", "m1", "ONTASKADD", "4", now, eventsv1.Source_SOURCE_PUSH))
	e.publishEvent(ctx, envelope("ev-old", "m1", "ONCRMDEALUPDATE", "5", now.Add(-2*time.Hour), eventsv1.Source_SOURCE_PUSH))
	e.publishEvent(ctx, envelope("ev-z", "m9", "ONCRMDEALUPDATE", "6", now, eventsv1.Source_SOURCE_PUSH)) // m9 is not registered
	e.publishOutcome(ctx, "ev-a", "deal-sync", "m1", eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, 1, "", "")
	e.publishOutcome(ctx, "ev-a", "tasks", "m1", eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED, 1, "", "")
	e.publishOutcome(ctx, "ev-b", "deal-sync", "m1", eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, 1, "portal said 500", "transient")
	e.eventually("ledger filled", 10*time.Second, func() bool {
		var ev, d int
		return e.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM monitor.webhook_events), (SELECT count(*) FROM monitor.deliveries)").Scan(&ev, &d) == nil &&
			ev == 6 && d == 3
	})

	bctx := signIn(t, ctx, exe, e)
	// rows lists the event ids the search table shows once it settles on
	// want (it is refreshed asynchronously after each submit).
	rows := func(what string, want ...string) {
		t.Helper()
		var got []string
		deadline := time.Now().Add(time.Minute)
		for {
			if err := chromedp.Run(bctx, chromedp.Evaluate(
				`[...document.querySelectorAll("#events tbody tr[data-event]")].map(r => r.dataset.event)`, &got)); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			slices.Sort(got)
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the search shows %v, want %v", what, got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// setLocalTime sets a datetime-local input to t in the browser's zone.
	setLocalTime := func(name string, at time.Time) chromedp.Action {
		return chromedp.Evaluate(`(() => {
			const d = new Date(`+strconv.Quote(at.UTC().Format(time.RFC3339))+`), p = (n) => String(n).padStart(2, "0");
			document.querySelector('#search [name="`+name+`"]').value =
				d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
		})()`, nil)
	}
	submit := chromedp.Click(`#search button[type="submit"]`)

	// A portal the registry does not hold is listed but not watched.
	var watched int
	if err := chromedp.Run(bctx,
		chromedp.WaitVisible(`#health tr[data-portal="m9"] [data-watched="false"]`),
		chromedp.Evaluate(`document.querySelectorAll('#health tr[data-portal="m1"] [data-watched="false"]').length`, &watched),
	); err != nil {
		t.Fatalf("health: %v", err)
	}
	if watched != 0 {
		t.Error("registered portal m1 shown as not watched")
	}

	rows("no filter", "ev-a", "ev-b", "ev-c", "ev-d", "ev-old", "ev-z")
	if err := chromedp.Run(bctx,
		chromedp.SendKeys(`#search [name="portal"]`, "m1"),
		chromedp.SendKeys(`#search [name="type"]`, "ONCRMDEALUPDATE"),
		submit); err != nil {
		t.Fatal(err)
	}
	rows("portal and type", "ev-a", "ev-b", "ev-old")
	if err := chromedp.Run(bctx, setLocalTime("from", now.Add(-time.Hour)), submit); err != nil {
		t.Fatal(err)
	}
	rows("time range", "ev-a", "ev-b")
	if err := chromedp.Run(bctx, chromedp.SetValue(`#search [name="status"]`, "error"), submit); err != nil {
		t.Fatal(err)
	}
	rows("status", "ev-b")
	if err := chromedp.Run(bctx, chromedp.SetValue(`#search [name="status"]`, ""), submit); err != nil {
		t.Fatal(err)
	}
	rows("status cleared", "ev-a", "ev-b")

	// Bulk replay by that filter: the dry run counts two and publishes
	// nothing until confirmed.
	var confirmText string
	if err := chromedp.Run(bctx,
		chromedp.Click("#replay-matching"),
		chromedp.WaitVisible(`#bulk-replay[data-would-replay="2"] #bulk-replay-confirm`),
		chromedp.Text("#bulk-replay", &confirmText),
	); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !strings.Contains(confirmText, "Replay 2 events") || !strings.Contains(confirmText, "portal=m1") || !strings.Contains(confirmText, "type=ONCRMDEALUPDATE") {
		t.Errorf("confirmation shows %q", confirmText)
	}
	replayedFrom := func() []string {
		rows, err := e.pool.Query(ctx, "SELECT replayed_from FROM monitor.replays ORDER BY replayed_from")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := replayedFrom(); len(got) != 0 {
		t.Fatalf("the dry run replayed %v", got)
	}
	var doneText string
	if err := chromedp.Run(bctx,
		chromedp.Click("#bulk-replay-confirm"),
		chromedp.WaitVisible("#bulk-replay.done"),
		chromedp.Text("#bulk-replay", &doneText),
	); err != nil {
		t.Fatalf("bulk replay: %v", err)
	}
	if !strings.Contains(doneText, "Replayed 2 events") {
		t.Errorf("bulk replay shows %q", doneText)
	}
	if got := replayedFrom(); !slices.Equal(got, []string{"ev-a", "ev-b"}) {
		t.Fatalf("bulk replay replayed %v, want ev-a and ev-b", got)
	}

	// An event's page: its deliveries per consumer and its trace link,
	// reachable by address; then "Replay this event".
	var deliveries, href string
	var ok bool
	if err := chromedp.Run(bctx,
		chromedp.Navigate("about:blank"),
		chromedp.Navigate(e.base+"/#event=ev-a"),
		chromedp.WaitVisible(`[data-testid="deliveries"] tr[data-consumer="tasks"]`),
		chromedp.Text(`[data-testid="deliveries"]`, &deliveries),
		chromedp.AttributeValue(`[data-testid="trace-link"]`, "href", &href, &ok),
	); err != nil {
		t.Fatalf("event page: %v", err)
	}
	if !strings.Contains(deliveries, "deal-sync") || !strings.Contains(deliveries, "done") || !strings.Contains(deliveries, "skipped") {
		t.Errorf("deliveries show %q", deliveries)
	}
	if !ok || href != "http://jaeger:16686/trace/"+traceID {
		t.Errorf("trace link = %q, want the template with %s", href, traceID)
	}
	var replayText string
	if err := chromedp.Run(bctx,
		chromedp.Click(`#replay-event[data-event="ev-a"]`),
		chromedp.WaitVisible(`//button[@id="replay-event"][contains(., "Replayed as ev-a-r")]`),
		chromedp.Text("#replay-event", &replayText),
	); err != nil {
		t.Fatalf("replay this event: %v", err)
	}
	if got := replayedFrom(); len(got) != 3 {
		t.Errorf("after Replay this event: replays of %v", got)
	}
}
