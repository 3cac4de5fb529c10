package monitor_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/b24hub/b24hub/services/monitor/internal/api"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/b24hub/b24hub/services/monitor/internal/replay"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"B24HUB_MONITOR_RETENTION": "48h", "B24HUB_MONITOR_BATCH_SIZE": "100", "B24HUB_MONITOR_TOKEN": "0123456789abcdef"}
	cfg, err := monitor.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil || cfg.Addr != monitor.DefaultAddr || cfg.Retention != 48*time.Hour || cfg.BatchSize != 100 {
		t.Fatalf("cfg = %+v, %v", cfg, err)
	}
	if strings.Contains(cfg.String(), "0123456789abcdef") {
		t.Error("token printed")
	}
	for name, bad := range map[string]map[string]string{
		"retention": {"B24HUB_MONITOR_RETENTION": "1h"},
		"duration":  {"B24HUB_MONITOR_BATCH_WAIT": "soon"},
		"batch":     {"B24HUB_MONITOR_BATCH_SIZE": "0x"},
		"token":     {"B24HUB_MONITOR_TOKEN": "short"},
		"file":      {"B24HUB_MONITOR_TOKEN_FILE": "/nonexistent/token"},
	} {
		if _, err := monitor.ConfigFromEnv(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestEventToDeliveriesAndReplay follows one event from the raw stream to
// the API with its deliveries and trace link, then a dead letter through
// replay until the replay is done.
func TestEventToDeliveriesAndReplay(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	tp := sdktrace.NewTracerProvider()
	parent, span := tp.Tracer("test").Start(ctx, "ingress")
	traceID := span.SpanContext().TraceID().String()
	e.publishEvent(parent, envelope("ev-1", "m1", "ONCRMDEALUPDATE", "42", e.clock.Now(), eventsv1.Source_SOURCE_PUSH))
	span.End()
	e.publishOutcome(ctx, "ev-1", "deal-sync", "m1", eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, 1, "OVERLOAD_LIMIT", eventbus.ErrorKindOverload)
	e.publishOutcome(ctx, "ev-1", "deal-sync", "m1", eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, 2, "", "")
	e.publishOutcome(ctx, "ev-1", "telephony", "m1", eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED, 1, "", "")

	var detail api.EventDetail
	// The event and its outcomes are ingested by different consumers, so
	// the event's own status may follow its deliveries by a moment.
	e.eventually("event with two deliveries, done", 10*time.Second, func() bool {
		return e.get("/api/v1/events/ev-1", &detail) == http.StatusOK && len(detail.Deliveries) == 2 &&
			detail.Deliveries[0].Attempts == 2 && detail.Event.Status == "done"
	})
	if detail.TraceID != traceID || detail.TraceURL != "http://jaeger:16686/trace/"+traceID {
		t.Errorf("trace = %q %q, want %s", detail.TraceID, detail.TraceURL, traceID)
	}
	if d := detail.Deliveries[0]; d.Consumer != "deal-sync" || d.Status != "done" || d.LastError != "" {
		t.Errorf("deal-sync delivery = %+v", d)
	}
	if detail.Event.Status != "done" || detail.Payload != "event=ONCRMDEALUPDATE&data[FIELDS][ID]=42" {
		t.Errorf("event = %+v payload %q", detail.Event, detail.Payload)
	}
	var page ledger.EventPage
	if code := e.get("/api/v1/events?portal=m1&type=ONCRMDEALUPDATE&source=push&entity=42", &page); code != 200 || len(page.Events) != 1 {
		t.Fatalf("search: %d %+v", code, page)
	}

	// A dead letter, replayed through the API, ends done.
	e.fakeConsumer("deal-sync")
	dead := envelope("ev-2", "m1", "ONCRMDEALUPDATE", "43", e.clock.Now(), eventsv1.Source_SOURCE_PUSH)
	e.publishEvent(ctx, dead)
	e.publishDead(ctx, dead, "deal-sync", "max_deliveries", "portal said 500")
	var dl struct {
		DeadLetters []ledger.DeadLetterRow `json:"dead_letters"`
	}
	e.eventually("dead letter", 10*time.Second, func() bool {
		return e.get("/api/v1/dead-letters?consumer=deal-sync", &dl) == 200 && len(dl.DeadLetters) == 1
	})
	var res replay.Result
	if code := e.do(http.MethodPost, "/api/v1/replay", api.ReplayRequest{EventID: "ev-2", Consumer: "deal-sync"}, &res); code != http.StatusAccepted ||
		len(res.Replayed) != 1 || !strings.HasPrefix(res.Replayed[0].ID, "ev-2-r") {
		t.Fatalf("replay: %d %+v", code, res)
	}
	e.eventually("replay done", 10*time.Second, func() bool {
		return e.get("/api/v1/dead-letters?consumer=deal-sync", &dl) == 200 && len(dl.DeadLetters) == 1 &&
			dl.DeadLetters[0].Replay != nil && dl.DeadLetters[0].Replay.Status == "done"
	})
	var replayed api.EventDetail
	e.eventually("replayed event recorded", 10*time.Second, func() bool {
		return e.get("/api/v1/events/"+res.Replayed[0].ID, &replayed) == http.StatusOK
	})
	if replayed.Event.Source != "replay" || replayed.Event.ReplayOf != "ev-2" {
		t.Errorf("replayed event = %+v", replayed.Event)
	}
	// Bulk replay skips the dead letter whose replay is already done.
	if code := e.do(http.MethodPost, "/api/v1/replay", api.ReplayRequest{DeadLetters: &api.DeadLetterQuery{Consumer: "deal-sync"}}, &res); code != http.StatusAccepted ||
		len(res.Replayed) != 0 || len(res.Skipped) != 1 {
		t.Fatalf("bulk replay: %d %+v", code, res)
	}
	if code := e.do(http.MethodPost, "/api/v1/replay", api.ReplayRequest{EventID: "nope"}, nil); code != http.StatusNotFound {
		t.Errorf("replay of unknown event: %d", code)
	}

	var stats api.Stats
	if code := e.get("/api/v1/stats?window=1h&bucket=5m", &stats); code != 200 || len(stats.Throughput) == 0 || len(stats.Outcomes) == 0 {
		t.Errorf("stats: %d %+v", code, stats)
	}
	var portals struct{ Portals []api.PortalHealth }
	if code := e.get("/api/v1/portals", &portals); code != 200 || len(portals.Portals) != 1 || portals.Portals[0].Domain != "m1.bitrix24.ru" {
		t.Errorf("portals: %d %+v", code, portals)
	}
	var _ propagation.TextMapCarrier = eventbus.HeaderCarrier{}
}

// TestSilenceAlertFiresAndResolves stops events during business hours
// (moving the injected clock), expects a firing alert at the webhook sink,
// then resumes events and expects it resolved, each announced once.
func TestSilenceAlertFiresAndResolves(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e.publishEvent(ctx, envelope("s-1", "m1", "ONCRMDEALUPDATE", "1", e.clock.Now(), eventsv1.Source_SOURCE_PUSH))
	const key = "deal-update-silence/m1"
	var portals struct{ Portals []api.PortalHealth }
	e.eventually("portal health", 10*time.Second, func() bool {
		return e.get("/api/v1/portals", &portals) == 200 && len(portals.Portals) == 1 && len(portals.Portals[0].Silence) == 1
	})
	if portals.Portals[0].Silence[0].Firing {
		t.Fatal("silence firing right after an event")
	}
	e.evaluated() // nothing fires
	if got := e.hook.states(key); len(got) != 0 {
		t.Fatalf("early notifications %v", got)
	}

	e.clock.Advance(11 * time.Minute)
	e.eventually("firing alert", 10*time.Second, func() bool { return len(e.hook.states(key)) == 1 })
	var alerts struct{ Alerts []map[string]any }
	e.get("/api/v1/alerts?state=firing", &alerts)
	if len(alerts.Alerts) != 1 || alerts.Alerts[0]["key"] != key {
		t.Fatalf("alerts = %+v", alerts)
	}
	e.evaluated() // still firing: no repeats
	if got := e.hook.states(key); len(got) != 1 || got[0] != "firing" {
		t.Fatalf("notifications while firing = %v", got)
	}

	e.publishEvent(ctx, envelope("s-2", "m1", "ONCRMDEALUPDATE", "1", e.clock.Now(), eventsv1.Source_SOURCE_PUSH))
	e.eventually("resolved alert", 10*time.Second, func() bool { return len(e.hook.states(key)) == 2 })
	if got := e.hook.states(key); got[1] != "resolved" {
		t.Fatalf("notifications = %v", got)
	}
	// The sinks are sent one after the other: the Slack message may come
	// after the webhook's.
	slack := func() string {
		e.hook.mu.Lock()
		defer e.hook.mu.Unlock()
		return strings.Join(e.hook.slck, "\n")
	}
	e.eventually("both states at the slack sink", 10*time.Second, func() bool {
		return strings.Contains(slack(), "FIRING") && strings.Contains(slack(), "RESOLVED")
	})
}

// TestPostgresDownCatchesUp cuts PostgreSQL while events arrive: the
// monitor reports not ready, does not crash, and records every event once
// the database is back.
func TestPostgresDownCatchesUp(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e.proxy.Stop()
	for i := range 30 {
		e.publishEvent(ctx, envelope("pg-"+string(rune('a'+i)), "m1", "ONTASKADD", "7", e.clock.Now(), eventsv1.Source_SOURCE_OFFLINE))
	}
	e.eventually("not ready", 10*time.Second, func() bool { return e.svc.Ready(ctx) != nil })
	time.Sleep(time.Second)
	e.proxy.Start()
	e.eventually("all events recorded", 60*time.Second, func() bool {
		var n int
		return e.pool.QueryRow(ctx, "SELECT count(*) FROM monitor.webhook_events WHERE id LIKE 'pg-%'").Scan(&n) == nil && n == 30
	})
	e.eventually("ready again", 10*time.Second, func() bool { return e.svc.Ready(ctx) == nil })
	// Redelivered messages made no second row.
	var rows, distinct int
	if err := e.pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM monitor.webhook_events").Scan(&rows, &distinct); err != nil || rows != distinct {
		t.Fatalf("rows %d distinct %d err %v", rows, distinct, err)
	}
}

func TestAuthentication(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		name, path, auth string
		want             int
	}{
		{"api without token", "/api/v1/events", "", http.StatusUnauthorized},
		{"api with wrong token", "/api/v1/events", "Bearer wrong-token-xxxxxxxx", http.StatusUnauthorized},
		{"api with token", "/api/v1/events", "Bearer " + e.svc.Token(), http.StatusOK},
		{"dashboard without login", "/", "", http.StatusUnauthorized},
		{"static without login", "/static/app.js", "", http.StatusUnauthorized},
		{"healthz is open", "/healthz", "", http.StatusOK},
		{"readyz is open", "/readyz", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.base+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// ?token= is exchanged for an HttpOnly cookie and dropped from the URL.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(e.base + "/?token=" + url.QueryEscape(e.svc.Token()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.RawQuery != "" {
		t.Fatalf("login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	resp, _ = c.Get(e.base + "/api/v1/alerts")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("cookie session: %d", resp.StatusCode)
	}
	// A cookie-authenticated POST must be JSON (no cross-site form posts).
	resp, _ = c.Post(e.base+"/api/v1/replay", "application/x-www-form-urlencoded", strings.NewReader("event_id=x"))
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form POST with cookie: %d", resp.StatusCode)
	}
}

// TestSessionsEndAndCanBeRevoked: a dashboard session is a random id kept
// server-side: sign-out ends it for good (a copied cookie stops working),
// and the bearer token ends every session at once without being rotated;
// a session itself cannot do that.
func TestSessionsEndAndCanBeRevoked(t *testing.T) {
	e := start(t)
	signIn := func() (*http.Client, *http.Cookie) {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		resp, err := c.Get(e.base + "/?token=" + url.QueryEscape(e.svc.Token()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		u, _ := url.Parse(e.base)
		for _, ck := range jar.Cookies(u) {
			if ck.Name == api.CookieName {
				return c, ck
			}
		}
		t.Fatal("no session cookie after sign-in")
		return nil, nil
	}
	withCookie := func(ck *http.Cookie, method, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, e.base+path, nil)
		req.AddCookie(ck)
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	c1, ck1 := signIn()
	_, ck2 := signIn()
	if ck1.Value == ck2.Value || strings.Contains(ck1.Value, e.svc.Token()) {
		t.Fatalf("sessions are not random ids: %q %q", ck1.Value, ck2.Value)
	}
	resp, err := c1.Post(e.base+"/logout", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := withCookie(ck1, http.MethodGet, "/api/v1/alerts"); code != http.StatusUnauthorized {
		t.Errorf("a signed-out session's cookie still works: %d", code)
	}
	if code := withCookie(ck2, http.MethodGet, "/api/v1/alerts"); code != http.StatusOK {
		t.Fatalf("the other session: %d", code)
	}
	if code := withCookie(ck2, http.MethodPost, "/api/v1/sessions/revoke"); code != http.StatusForbidden {
		t.Errorf("a session revoked every session: %d", code)
	}
	var out map[string]int64
	if code := e.do(http.MethodPost, "/api/v1/sessions/revoke", nil, &out); code != http.StatusOK || out["revoked"] != 1 {
		t.Fatalf("revoke with the bearer: %d %v", code, out)
	}
	if code := withCookie(ck2, http.MethodGet, "/api/v1/alerts"); code != http.StatusUnauthorized {
		t.Errorf("a revoked session still works: %d", code)
	}
	if code := e.do(http.MethodGet, "/api/v1/alerts", nil, nil); code != http.StatusOK {
		t.Errorf("the token stopped working after revoking sessions: %d", code)
	}
}
