package fakeportal_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/fakeportal"
)

// TestPushesMatchDocumentedFixtures fires each documented event through the
// fake and compares the POST with the fixture: same top-level order (event,
// event_handler_id, data, ts, auth), the same data keys in the same order,
// every value a string, and the fixture's auth keys appearing in the same
// order (the fake may add the keys real captures carry: expires, user_id).
func TestPushesMatchDocumentedFixtures(t *testing.T) {
	tests := []struct {
		fixture string
		event   string
		fire    func(p *fakeportal.Portal)
		webhook bool // outgoing webhook: auth block must match exactly
	}{
		{"DOCS-ONCRMDEALADD-app.json.txt", "ONCRMDEALADD", func(p *fakeportal.Portal) { p.CreateDeal(map[string]string{"TITLE": "x"}, true) }, false},
		{"DOCS-ONCRMDEALADD.json.txt", "ONCRMDEALADD", func(p *fakeportal.Portal) { p.CreateDeal(nil, true) }, false},
		{"DOCS-ONCRMDEALUPDATE.json.txt", "ONCRMDEALUPDATE", func(p *fakeportal.Portal) {
			p.UpdateDeal(p.CreateDeal(nil, false), map[string]string{"TITLE": "y"}, true)
		}, false},
		{"DOCS-ONCRMDEALDELETE.json.txt", "ONCRMDEALDELETE", func(p *fakeportal.Portal) { p.DeleteDeal(p.CreateDeal(nil, false), true) }, false},
		{"DOCS-ONTASKADD.json.txt", "ONTASKADD", func(p *fakeportal.Portal) { p.CreateTask(fakeportal.Task{Title: "t"}, true) }, false},
		{"DOCS-ONTASKUPDATE.json.txt", "ONTASKUPDATE", func(p *fakeportal.Portal) {
			p.UpdateTask(p.CreateTask(fakeportal.Task{}, false), func(t *fakeportal.Task) { t.Title = "z" }, true)
		}, false},
		{"DOCS-ONTASKDELETE.json.txt", "ONTASKDELETE", func(p *fakeportal.Portal) { p.DeleteTask(p.CreateTask(fakeportal.Task{}, false), true) }, false},
		{"DOCS-ONVOXIMPLANTCALLEND.json.txt", "ONVOXIMPLANTCALLEND", func(p *fakeportal.Portal) {
			p.EndCall(fakeportal.Call{PhoneNumber: "+499061234567", CallType: "1", FailedCode: "304", FailedReason: "Call canceled"}, true)
		}, false},
		{"DOCS-ONCRMDEALADD-outgoing-webhook.json.txt", "ONCRMDEALADD", func(p *fakeportal.Portal) { p.CreateDeal(nil, true) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			want, err := b24event.FormFromJSON(fixture(t, tt.fixture))
			if err != nil {
				t.Fatalf("fixture does not flatten: %v", err)
			}
			p := newPortal(t, fakeportal.Config{})
			s := newSink(t)
			if tt.webhook {
				p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: s.URL(), ApplicationToken: "jvh9y1ulvt2m6k5or90v9mg8nn32ozas", Events: []string{tt.event}})
			} else {
				bindOnline(t, p, s.URL(), tt.event)
			}
			tt.fire(p)
			drain(t, p)
			got := s.events(t)
			if len(got) != 1 {
				t.Fatalf("%d pushes, want 1", len(got))
			}
			fields := got[0].Fields

			wantTop := []string{"event", "event_handler_id", "data", "ts", "auth"}
			if gt := topLevel(fields); !slices.Equal(gt, wantTop) {
				t.Fatalf("top-level order %v, want %v", gt, wantTop)
			}
			if dk, wk := keys(fields, "data"), keys(want, "data"); !slices.Equal(dk, wk) {
				t.Fatalf("data keys %v, want %v", dk, wk)
			}
			gotAuth, wantAuth := keys(fields, "auth["), keys(want, "auth[")
			if tt.webhook {
				if !slices.Equal(gotAuth, wantAuth) {
					t.Fatalf("webhook auth %v, want exactly %v", gotAuth, wantAuth)
				}
			} else {
				// refresh_token only rides on ONAPPINSTALL and ONOFFLINEEVENT
				// (§3.2, [SRC] sendRefreshToken); some doc examples show it anyway.
				wantAuth = slices.DeleteFunc(wantAuth, func(k string) bool { return k == "auth[refresh_token]" })
				if !isSubsequence(wantAuth, gotAuth) {
					t.Fatalf("auth keys %v do not contain %v in order", gotAuth, wantAuth)
				}
			}
			ev, err := got[0].Event()
			if err != nil {
				t.Fatalf("ingress parser rejects the push: %v", err)
			}
			if ev.Name != tt.event || ev.MemberID != p.MemberID() || ev.ApplicationToken == "" || ev.TS.IsZero() {
				t.Fatalf("event %+v", ev)
			}
			if !strings.HasSuffix(ev.ServerEndpoint, "/rest/") || ev.ClientEndpoint != p.ClientEndpoint() {
				t.Fatalf("endpoints %q %q", ev.ServerEndpoint, ev.ClientEndpoint)
			}
			if ev.EntityID == "" {
				t.Fatal("no entity ID")
			}
		})
	}
}

func bindOnline(t *testing.T, p *fakeportal.Portal, handler string, events ...string) fakeportal.Install {
	t.Helper()
	in := p.InstallApp(fakeportal.App{ClientID: "local.app", ClientSecret: "secret"})
	for _, ev := range events {
		status, env := call(t, p, "/rest/event.bind", map[string]any{"auth": in.AccessToken, "event": ev, "handler": handler})
		if status != 200 || env["result"] != true {
			t.Fatalf("bind %s: %d %v", ev, status, env)
		}
	}
	return in
}

func TestOfflineAnswersMatchDocumentedShape(t *testing.T) {
	var wantGet struct {
		Result struct {
			ProcessID *string          `json:"process_id"`
			Events    []map[string]any `json:"events"`
		} `json:"result"`
	}
	if err := json.Unmarshal(fixture(t, "DOCS-event.offline.get-response-reserved-newer.json.txt"), &wantGet); err != nil {
		t.Fatal(err)
	}
	var wantList struct {
		Result []map[string]any `json:"result"`
		Total  any              `json:"total"`
	}
	if err := json.Unmarshal(fixture(t, "DOCS-event.offline.list-response.json.txt"), &wantList); err != nil {
		t.Fatal(err)
	}
	p := newPortal(t, fakeportal.Config{})
	in := p.InstallApp(fakeportal.App{ClientID: "c", ClientSecret: "s"})
	if st, env := call(t, p, "/rest/event.bind", map[string]any{"auth": in.AccessToken, "event": "ONCRMDEALUPDATE", "event_type": "offline"}); st != 200 {
		t.Fatalf("bind offline: %v", env)
	}
	p.UpdateDeal(p.CreateDeal(nil, false), map[string]string{"TITLE": "a"}, true)

	_, list := call(t, p, "/rest/event.offline.list", map[string]any{"auth": in.AccessToken})
	rows := list["result"].([]any)
	if len(rows) != 1 || list["total"] == nil {
		t.Fatalf("list %v", list)
	}
	assertSameKeys(t, "list row", rows[0].(map[string]any), wantList.Result[0])

	_, got := call(t, p, "/rest/event.offline.get", map[string]any{"auth": in.AccessToken, "clear": 0})
	res := got["result"].(map[string]any)
	pid, _ := res["process_id"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(pid) {
		t.Fatalf("process_id %v", res["process_id"])
	}
	evs := res["events"].([]any)
	if len(evs) != 1 {
		t.Fatalf("events %v", evs)
	}
	row := evs[0].(map[string]any)
	assertSameKeys(t, "get row", row, wantGet.Result.Events[0])
	if _, ok := row["ID"].(string); !ok {
		t.Fatalf("ID is not a string: %v", row["ID"])
	}
	if d, _ := json.Marshal(row["EVENT_DATA"]); string(d) != `{"FIELDS":{"ID":"1"}}` {
		t.Fatalf("EVENT_DATA %s", d)
	}
	if a, _ := json.Marshal(row["EVENT_ADDITIONAL"]); string(a) != `{"user_id":"1"}` {
		t.Fatalf("EVENT_ADDITIONAL %s", a)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(row["MESSAGE_ID"].(string)) {
		t.Fatalf("MESSAGE_ID %v", row["MESSAGE_ID"])
	}

	// clear=1 without a process_id answers process_id null, like the older
	// doc example.
	p.UpdateDeal(1, map[string]string{"TITLE": "b"}, true)
	_, got = call(t, p, "/rest/event.offline.get", map[string]any{"auth": in.AccessToken})
	if r := got["result"].(map[string]any); r["process_id"] != nil || len(r["events"].([]any)) != 1 {
		t.Fatalf("clear=1: %v", got)
	}
}

func assertSameKeys(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	var g, w []string
	for k := range got {
		g = append(g, k)
	}
	for k := range want {
		w = append(w, k)
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("%s keys %v, want %v", what, g, w)
	}
}

func TestAppTestEventMatchesDocumentedFixture(t *testing.T) {
	doc := string(fixture(t, "DOCS-ONAPPTEST.php.txt"))
	if !strings.Contains(doc, "'any' => 'data'") || !strings.Contains(doc, "'LANGUAGE_ID' => 'en'") {
		t.Fatal("fixture changed; update this test")
	}
	p := newPortal(t, fakeportal.Config{})
	s := newSink(t)
	in := bindOnline(t, p, s.URL(), "ONAPPTEST")
	if st, env := call(t, p, "/rest/event.test", map[string]any{"auth": in.AccessToken, "any": "data"}); st != 200 || env["result"] != true {
		t.Fatalf("event.test: %v", env)
	}
	drain(t, p)
	evs := s.events(t)
	if len(evs) != 1 {
		t.Fatalf("%d pushes", len(evs))
	}
	data := keys(evs[0].Fields, "data")
	if !slices.Equal(data, []string{"data[QUERY][any]", "data[LANGUAGE_ID]"}) {
		t.Fatalf("data %v", data)
	}
	if v := evs[0].Tree["data"].(map[string]any)["QUERY"].(map[string]any)["any"]; v != "data" {
		t.Fatalf("QUERY.any = %v", v)
	}
}

func TestOfflineEventNotificationMatchesFixture(t *testing.T) {
	want, err := b24event.FormFromJSON(fixture(t, "DOCS-ONOFFLINEEVENT.json.txt"))
	if err != nil {
		t.Fatal(err)
	}
	p := newPortal(t, fakeportal.Config{})
	s := newSink(t)
	in := bindOnline(t, p, s.URL(), "ONOFFLINEEVENT")
	call(t, p, "/rest/event.bind", map[string]any{"auth": in.AccessToken, "event": "ONCRMDEALADD", "event_type": "offline"})
	for range 5 {
		p.CreateDeal(nil, true) // one hit each; minTimeout (1s) throttles
	}
	drain(t, p)
	evs := s.events(t)
	if len(evs) != 1 {
		t.Fatalf("%d notifications, want 1 (throttled)", len(evs))
	}
	if d := keys(evs[0].Fields, "data"); len(d) != 0 {
		t.Fatalf("ONOFFLINEEVENT data must be empty, got %v", d)
	}
	if !isSubsequence(keys(want, "auth["), keys(evs[0].Fields, "auth[")) {
		t.Fatalf("auth %v lacks %v (refresh_token included)", keys(evs[0].Fields, "auth["), keys(want, "auth["))
	}
}
