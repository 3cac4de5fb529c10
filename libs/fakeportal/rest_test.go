package fakeportal_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/fakeportal"
)

// fixedClock is a settable clock.
type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

func TestLeakyBucket(t *testing.T) {
	clock := &fixedClock{time.Unix(1_800_000_000, 0)}
	p := newPortal(t, fakeportal.Config{Rate: 2, Burst: 50, Clock: clock})
	hook := strings.TrimPrefix(p.AddWebhook(1, "code"), "http://"+p.Domain())
	for i := range 50 {
		if st, env := call(t, p, hook+"crm.deal.fields", nil); st != 200 {
			t.Fatalf("request %d within burst: %d %v", i+1, st, env)
		}
	}
	st, env := call(t, p, hook+"crm.deal.fields", nil)
	if st != 503 || env["error"] != "QUERY_LIMIT_EXCEEDED" || env["error_description"] != "Too many requests" {
		t.Fatalf("51st request: %d %v", st, env)
	}
	// Half a second drains one slot at 2 req/s (§4.5).
	clock.t = clock.t.Add(500 * time.Millisecond)
	if st, _ := call(t, p, hook+"crm.deal.fields", nil); st != 200 {
		t.Fatalf("after draining one slot: %d", st)
	}
	if st, _ := call(t, p, hook+"crm.deal.fields", nil); st != 503 {
		t.Fatalf("second request after one slot drained: %d", st)
	}
	s := p.Stats()
	if s.Requests != 53 || s.QueryLimitExceeded != 2 || s.MaxLevel != 50 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAuthentication(t *testing.T) {
	clock := &fixedClock{time.Unix(1_800_000_000, 0)}
	p := newPortal(t, fakeportal.Config{Clock: clock})
	p.AddWebhook(3, "good")
	in := p.InstallApp(fakeportal.App{ClientID: "c", ClientSecret: "s"})
	tests := []struct {
		name   string
		path   string
		params map[string]any
		status int
		code   string
	}{
		{"webhook ok", "/rest/3/good/crm.deal.fields", nil, 200, ""},
		{"webhook wrong code", "/rest/3/bad/crm.deal.fields", nil, 401, "NO_AUTH_FOUND"},
		{"webhook wrong user", "/rest/4/good/crm.deal.fields", nil, 401, "NO_AUTH_FOUND"},
		{"oauth ok", "/rest/crm.deal.fields", map[string]any{"auth": in.AccessToken}, 200, ""},
		{"oauth .json suffix", "/rest/crm.deal.fields.json", map[string]any{"auth": in.AccessToken}, 200, ""},
		{"oauth no token", "/rest/crm.deal.fields", nil, 401, "NO_AUTH_FOUND"},
		{"oauth unknown token", "/rest/crm.deal.fields", map[string]any{"auth": "nope"}, 401, "invalid_token"},
		{"unknown method", "/rest/3/good/crm.nothing", nil, 404, "ERROR_METHOD_NOT_FOUND"},
		{"event.bind needs OAuth", "/rest/3/good/event.bind", map[string]any{"event": "ONCRMDEALADD", "handler": "https://x.example/h"}, 401, "WRONG_AUTH_TYPE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, env := call(t, p, tt.path, tt.params)
			if st != tt.status || (tt.code != "" && env["error"] != tt.code) {
				t.Fatalf("got %d %v", st, env)
			}
		})
	}
	// Auth also works from the query string, like ?auth=.
	resp, err := p.Client().Get(p.URL() + "/rest/crm.deal.fields?auth=" + in.AccessToken)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET with auth in query: %v %v", resp, err)
	}
	resp.Body.Close()

	clock.t = clock.t.Add(time.Hour + time.Second)
	if st, env := call(t, p, "/rest/crm.deal.fields", map[string]any{"auth": in.AccessToken}); st != 401 || env["error"] != "expired_token" {
		t.Fatalf("after an hour: %d %v", st, env)
	}
}

func refresh(t *testing.T, p *fakeportal.Portal, in fakeportal.Install, rt string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {in.ClientID}, "client_secret": {in.ClientSecret}, "refresh_token": {rt}}
	resp, err := http.Post(strings.TrimSuffix(in.ServerEndpoint, "rest/")+"oauth/token/", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestRefreshRotates(t *testing.T) {
	p := newPortal(t, fakeportal.Config{})
	in := p.InstallApp(fakeportal.App{ClientID: "c", ClientSecret: "s"})
	st, tok := refresh(t, p, in, in.RefreshToken)
	if st != 200 || tok["refresh_token"] == in.RefreshToken || tok["access_token"] == "" || tok["member_id"] != p.MemberID() {
		t.Fatalf("refresh: %d %v", st, tok)
	}
	if tok["client_endpoint"] != p.ClientEndpoint() || tok["expires_in"] != float64(3600) {
		t.Fatalf("refresh answer %v", tok)
	}
	// The old refresh token is spent.
	if st, e := refresh(t, p, in, in.RefreshToken); st != 400 || e["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", st, e)
	}
	bad := in
	bad.ClientSecret = "wrong"
	if st, e := refresh(t, p, bad, tok["refresh_token"].(string)); st != 401 || e["error"] != "invalid_client" {
		t.Fatalf("bad secret: %d %v", st, e)
	}
	if st, _ := call(t, p, "/rest/crm.deal.fields", map[string]any{"auth": tok["access_token"]}); st != 200 {
		t.Fatal("new access token rejected")
	}
	if s := p.Stats(); s.Refreshes != 1 {
		t.Fatalf("refreshes %d", s.Refreshes)
	}
}

func TestCRMDeals(t *testing.T) {
	p := newPortal(t, fakeportal.Config{})
	hook := strings.TrimPrefix(p.AddWebhook(1, "c"), "http://"+p.Domain())
	for i := range 120 {
		p.CreateDeal(map[string]string{"TITLE": "d", "OPPORTUNITY": string(rune('0' + i%10)), "UF_CRM_EXTERNAL_ID": "x"}, false)
	}
	tests := []struct {
		name   string
		method string
		params map[string]any
		check  func(t *testing.T, st int, env map[string]any)
	}{
		{"get", "crm.deal.get", map[string]any{"id": "7"}, func(t *testing.T, st int, env map[string]any) {
			r := env["result"].(map[string]any)
			if st != 200 || r["ID"] != "7" || r["UF_CRM_EXTERNAL_ID"] != "x" || r["DATE_MODIFY"] == "" {
				t.Fatalf("%d %v", st, env)
			}
		}},
		{"get missing answers an empty code", "crm.deal.get", map[string]any{"id": 999}, func(t *testing.T, st int, env map[string]any) {
			if st != 400 || env["error"] != "" || env["error_description"] != "Not found" {
				t.Fatalf("%d %v", st, env)
			}
		}},
		{"list pages by 50 with total and next", "crm.deal.list", map[string]any{"start": 50}, func(t *testing.T, st int, env map[string]any) {
			if len(env["result"].([]any)) != 50 || env["total"] != float64(120) || env["next"] != float64(100) {
				t.Fatalf("total %v next %v", env["total"], env["next"])
			}
		}},
		{"list start=-1 has no count", "crm.deal.list", map[string]any{"start": -1, "filter": map[string]any{">ID": 100}, "order": map[string]any{"ID": "ASC"}}, func(t *testing.T, st int, env map[string]any) {
			rows := env["result"].([]any)
			if len(rows) != 20 || env["total"] != float64(0) || env["next"] != nil || rows[0].(map[string]any)["ID"] != "101" {
				t.Fatalf("%d rows total %v next %v", len(rows), env["total"], env["next"])
			}
		}},
		{"list filter and select", "crm.deal.list", map[string]any{"filter": map[string]any{"OPPORTUNITY": "3", "<=ID": 50}, "select": []string{"ID", "TITLE"}}, func(t *testing.T, st int, env map[string]any) {
			rows := env["result"].([]any)
			if len(rows) != 5 || len(rows[0].(map[string]any)) != 2 {
				t.Fatalf("%v", rows)
			}
		}},
		{"update needs fields", "crm.deal.update", map[string]any{"id": 1, "fields": "x"}, func(t *testing.T, st int, env map[string]any) {
			if st != 400 || env["error"] != "" || env["error_description"] != "Parameter 'fields' must be array." {
				t.Fatalf("%d %v", st, env)
			}
		}},
		{"update ignores unknown fields", "crm.deal.update", map[string]any{"id": 1, "fields": map[string]any{"TITLE": "new", "NOPE": 1}}, func(t *testing.T, st int, env map[string]any) {
			if st != 200 || env["result"] != true {
				t.Fatalf("%d %v", st, env)
			}
		}},
		{"fields lists user fields", "crm.deal.fields", nil, func(t *testing.T, st int, env map[string]any) {
			r := env["result"].(map[string]any)
			if r["UF_CRM_SYNC_LOCK"] == nil || r["DATE_MODIFY"] == nil {
				t.Fatalf("%v", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, env := call(t, p, hook+tt.method, tt.params)
			tt.check(t, st, env)
		})
	}
	if d, _ := p.Deal(1); d["TITLE"] != "new" {
		t.Fatalf("update not applied: %v", d)
	}
}

func TestBatch(t *testing.T) {
	p := newPortal(t, fakeportal.Config{})
	hook := strings.TrimPrefix(p.AddWebhook(1, "c"), "http://"+p.Domain())
	p.CreateDeal(map[string]string{"TITLE": "first", "ASSIGNED_BY_ID": "5"}, false)
	// Commands run in key order, $result references resolve, per-command
	// errors do not fail the batch (§4.7).
	raw := `{"halt":0,"cmd":{"z":"crm.deal.get?id=1","a":"crm.deal.update?id=$result[z][ID]&fields[TITLE]=from+$result[z][TITLE]","m":"crm.deal.get?id=404","b":"batch?cmd[x]=app.info"}}`
	resp, err := p.Client().Post(p.URL()+hook+"batch", "application/json", strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Result struct {
			Result      map[string]json.RawMessage   `json:"result"`
			ResultError map[string]map[string]string `json:"result_error"`
			ResultTime  map[string]any               `json:"result_time"`
		} `json:"result"`
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("batch status %d: %s", resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	errs := env.Result.ResultError
	if string(env.Result.Result["a"]) != "true" || errs["m"]["error_description"] != "Not found" || errs["b"]["error"] != "ERROR_BATCH_METHOD_NOT_ALLOWED" {
		t.Fatalf("batch answer %s", b)
	}
	if d, _ := p.Deal(1); d["TITLE"] != "from first" {
		t.Fatalf("reference not substituted: %v", d["TITLE"])
	}
	if !strings.Contains(string(b), `"result":{"z":`) {
		t.Fatalf("result not in command order: %s", b)
	}

	// halt stops at the first failure; empty maps come back as PHP [].
	_, env2 := call(t, p, hook+"batch", map[string]any{"halt": 1, "cmd": map[string]string{"a": "crm.deal.get?id=404", "b": "crm.deal.get?id=1"}})
	r := env2["result"].(map[string]any)
	if _, ok := r["result"].([]any); !ok || len(r["result_error"].(map[string]any)) != 1 {
		t.Fatalf("halt: %v", r)
	}
	// More than 50 commands is an error for the whole request.
	cmds := map[string]string{}
	for i := range 51 {
		cmds["c"+string(rune('A'+i%26))+string(rune('a'+i/26))] = "app.info"
	}
	if st, e := call(t, p, hook+"batch", map[string]any{"cmd": cmds}); st != 400 || e["error"] != "ERROR_BATCH_LENGTH_EXCEEDED" {
		t.Fatalf("51 commands: %d %v", st, e)
	}
	// A batch is one request for the bucket.
	if s := p.Stats(); s.Requests != 3 || s.Batches != 2 {
		t.Fatalf("stats %+v", s)
	}
	// Form-encoded batches keep their order too.
	form := "halt=0&cmd%5Bq%5D=crm.deal.get%3Fid%3D1&cmd%5Ba%5D=crm.deal.get%3Fid%3D1"
	resp, err = p.Client().Post(p.URL()+hook+"batch", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"result":{"q":`) {
		t.Fatalf("form batch order: %s", b)
	}
}

func TestRenameRedirectsAndKeepsPOST(t *testing.T) {
	p := newPortal(t, fakeportal.Config{Domain: "old.bitrix24.test"})
	hook := p.AddWebhook(1, "c")
	p.Rename("new.bitrix24.test")
	hc := p.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Post(hook+"crm.deal.fields", "application/json", bytes.NewReader([]byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://new.bitrix24.test/rest/1/c/crm.deal.fields" {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestEventBindSemantics(t *testing.T) {
	p := newPortal(t, fakeportal.Config{})
	in := p.InstallApp(fakeportal.App{ClientID: "c", ClientSecret: "s"})
	bind := func(params map[string]any) (int, map[string]any) {
		params["auth"] = in.AccessToken
		return call(t, p, "/rest/event.bind", params)
	}
	tests := []struct {
		name   string
		params map[string]any
		status int
		code   string
		desc   string
	}{
		{"ok (event is upper-cased)", map[string]any{"event": "onCrmDealUpdate", "handler": "https://hooks.example.com/b24"}, 200, "", ""},
		{"repeat is an error", map[string]any{"event": "ONCRMDEALUPDATE", "handler": "https://hooks.example.com/b24"}, 400, "ERROR_CORE", "Unable to set event handler: Handler already binded"},
		{"another user variant is new", map[string]any{"event": "ONCRMDEALUPDATE", "handler": "https://hooks.example.com/b24", "auth_type": 1}, 200, "", ""},
		{"unknown event", map[string]any{"event": "ONNOTHING", "handler": "https://hooks.example.com/b24"}, 400, "ERROR_EVENT_NOT_FOUND", ""},
		{"host without a dot", map[string]any{"event": "ONCRMDEALADD", "handler": "http://localhost/b24"}, 400, "ERROR_WRONG_HANDLER_URL", ""},
		{"bad scheme", map[string]any{"event": "ONCRMDEALADD", "handler": "ftp://hooks.example.com/b24"}, 400, "ERROR_UNSUPPORTED_PROTOCOL", ""},
		{"offline ONOFFLINEEVENT", map[string]any{"event": "ONOFFLINEEVENT", "event_type": "offline"}, 400, "ERROR_EVENT_NOT_FOUND", ""},
		{"offline ok", map[string]any{"event": "ONCRMDEALUPDATE", "event_type": "offline", "auth_connector": "b24hub"}, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, env := bind(tt.params)
			if st != tt.status || (tt.code != "" && env["error"] != tt.code) || (tt.desc != "" && env["error_description"] != tt.desc) {
				t.Fatalf("got %d %v", st, env)
			}
		})
	}
	_, got := call(t, p, "/rest/event.get", map[string]any{"auth": in.AccessToken})
	rows := got["result"].([]any)
	if len(rows) != 3 {
		t.Fatalf("event.get %v", rows)
	}
	first := rows[0].(map[string]any)
	if first["event"] != "ONCRMDEALUPDATE" || first["auth_type"] != "0" || first["offline"] != float64(0) {
		t.Fatalf("online row %v", first)
	}
	if off := rows[2].(map[string]any); off["connector_id"] != "b24hub" || off["offline"] != float64(1) {
		t.Fatalf("offline row %v", off)
	}
	// Unbind without auth_type removes every user variant (§1.4).
	_, un := call(t, p, "/rest/event.unbind", map[string]any{"auth": in.AccessToken, "event": "ONCRMDEALUPDATE", "handler": "https://hooks.example.com/b24"})
	if un["result"].(map[string]any)["count"] != float64(2) {
		t.Fatalf("unbind %v", un)
	}
}

func TestOfflineQueue(t *testing.T) {
	p := newPortal(t, fakeportal.Config{})
	in := p.InstallApp(fakeportal.App{ClientID: "c", ClientSecret: "s"})
	auth := in.AccessToken
	call(t, p, "/rest/event.bind", map[string]any{"auth": auth, "event": "ONCRMDEALUPDATE", "event_type": "offline", "auth_connector": "b24hub"})
	id := p.CreateDeal(nil, false)
	for range 1000 {
		p.UpdateDeal(id, map[string]string{"TITLE": "x"}, true)
	}
	// "If the same deal is modified 1000 times, only one record… remains."
	if q := p.OfflineQueue(); len(q) != 1 {
		t.Fatalf("%d records after 1000 updates", len(q))
	}
	// An own write tagged with the connector is not queued (§2.4).
	hook := strings.TrimPrefix(p.AddWebhook(1, "w"), "http://"+p.Domain())
	call(t, p, "/rest/crm.deal.update", map[string]any{"auth": auth, "id": id, "fields": map[string]any{"TITLE": "own"}, "auth_connector": "b24hub"})
	_ = hook
	if s := p.Stats(); s.OfflineQueued != 1 || s.OfflineCoalesced != 999 {
		t.Fatalf("own write was queued: %+v", s)
	}

	get := func(params map[string]any) map[string]any {
		params["auth"] = auth
		params["auth_connector"] = "b24hub"
		st, env := call(t, p, "/rest/event.offline.get", params)
		if st != 200 {
			t.Fatalf("offline.get: %d %v", st, env)
		}
		return env["result"].(map[string]any)
	}
	res := get(map[string]any{"clear": 0})
	pid := res["process_id"].(string)
	// A change while the batch is reserved makes a second record (§2.1).
	p.UpdateDeal(id, map[string]string{"TITLE": "y"}, true)
	if q := p.OfflineQueue(); len(q) != 2 {
		t.Fatalf("%d records, want reserved + new", len(q))
	}
	// Parallel callers get disjoint batches.
	other := get(map[string]any{"clear": 0})
	if other["process_id"] == pid || len(other["events"].([]any)) != 1 {
		t.Fatalf("second reservation %v", other)
	}
	// Re-reading by process_id returns the same batch.
	again := get(map[string]any{"clear": 0, "process_id": pid})
	if len(again["events"].([]any)) != 1 {
		t.Fatalf("re-read %v", again)
	}
	mid := again["events"].([]any)[0].(map[string]any)["MESSAGE_ID"].(string)
	// error: marked and un-reserved; the other process's copy of the same
	// MESSAGE_ID is deleted.
	if st, e := call(t, p, "/rest/event.offline.error", map[string]any{"auth": auth, "process_id": pid, "message_id": []string{mid}}); st != 200 {
		t.Fatalf("error: %v", e)
	}
	q := p.OfflineQueue()
	if len(q) != 1 || q[0]["ERROR"] != "1" || q[0]["PROCESS_ID"] != "" {
		t.Fatalf("after error: %v", q)
	}
	errBatch := get(map[string]any{"clear": 0, "error": 1})
	epid := errBatch["process_id"].(string)
	if len(errBatch["events"].([]any)) != 1 {
		t.Fatalf("error=1 batch %v", errBatch)
	}
	if st, e := call(t, p, "/rest/event.offline.clear", map[string]any{"auth": auth, "process_id": epid, "message_id": []string{"short"}}); st != 400 {
		t.Fatalf("short message_id accepted: %v", e)
	}
	if st, _ := call(t, p, "/rest/event.offline.clear", map[string]any{"auth": auth, "process_id": epid}); st != 200 || len(p.OfflineQueue()) != 0 {
		t.Fatalf("clear whole batch left %v", p.OfflineQueue())
	}
}

func TestFaultInjection(t *testing.T) {
	p := newPortal(t, fakeportal.Config{Faults: fakeportal.Faults{HTMLRate: 1}})
	hook := p.AddWebhook(1, "c")
	resp, err := p.Client().Post(hook+"crm.deal.fields", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(b), "<html>") {
		t.Fatalf("HTML fault: %d %s", resp.StatusCode, b)
	}
	p.SetFaults(fakeportal.Faults{ServerErrorRate: 1})
	if st, env := call(t, p, strings.TrimPrefix(hook, "http://"+p.Domain())+"crm.deal.fields", nil); st != 500 || env["error"] != "INTERNAL_SERVER_ERROR" {
		t.Fatalf("5xx fault: %d %v", st, env)
	}

	// Dropped pushes are recorded but never sent.
	p.SetFaults(fakeportal.Faults{DropRate: 0.5})
	s := newSink(t)
	p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: s.URL(), Events: []string{"ONCRMDEALADD"}})
	for range 200 {
		p.CreateDeal(nil, true)
	}
	drain(t, p)
	st := p.Stats()
	if st.PushesDropped < 60 || st.PushesDropped > 140 || st.PushesSent+st.PushesDropped != 200 || len(s.events(t)) != int(st.PushesSent) {
		t.Fatalf("drop: %+v, sink got %d", st, len(s.events(t)))
	}
}

func TestSlowHandlerIsRecorded(t *testing.T) {
	p := newPortal(t, fakeportal.Config{SlowHandler: 50 * time.Millisecond})
	slow := newSlowSink(t, 80*time.Millisecond)
	p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: slow, Events: []string{"ONCRMDEALADD"}})
	p.CreateDeal(nil, true)
	drain(t, p)
	hs := p.HandlerStats()[slow]
	if hs.Sent != 1 || hs.Slow != 1 || hs.MaxDuration < 80*time.Millisecond {
		t.Fatalf("handler stats %+v", hs)
	}
	if d := p.Deliveries(); len(d) != 1 || d[0].Status != 200 || d[0].Duration < 80*time.Millisecond {
		t.Fatalf("deliveries %+v", d)
	}
}

func newSlowSink(t *testing.T, d time.Duration) string {
	s := newSink(t)
	s.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(d) })
	return s.URL()
}

func TestOperationLimit(t *testing.T) {
	clock := &fixedClock{time.Unix(1_800_000_000, 0)}
	p := newPortal(t, fakeportal.Config{Clock: clock, OperatingLimit: 10 * time.Second,
		OperatingCost: func(m string) time.Duration {
			if m == "crm.deal.update" {
				return 4 * time.Second
			}
			return 0
		}})
	hook := strings.TrimPrefix(p.AddWebhook(1, "c"), "http://"+p.Domain())
	id := p.CreateDeal(nil, false)
	upd := map[string]any{"id": id, "fields": map[string]any{"TITLE": "x"}}
	for range 3 {
		if st, env := call(t, p, hook+"crm.deal.update", upd); st != 200 {
			t.Fatalf("within budget: %v", env)
		}
	}
	st, env := call(t, p, hook+"crm.deal.update", upd)
	tm, _ := env["time"].(map[string]any)
	if st != 429 || env["error"] != "OPERATION_TIME_LIMIT" || tm["operating_reset_at"] != float64(1_800_000_600) {
		t.Fatalf("over budget: %d %v", st, env)
	}
	// Other methods keep working (§4.6).
	if st, _ := call(t, p, hook+"crm.deal.get", map[string]any{"id": id}); st != 200 {
		t.Fatal("other method blocked")
	}
	clock.t = clock.t.Add(10 * time.Minute)
	if st, _ := call(t, p, hook+"crm.deal.update", upd); st != 200 {
		t.Fatal("not reset after the window")
	}
}
