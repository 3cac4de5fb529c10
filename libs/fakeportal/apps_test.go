package fakeportal_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/fakeportal"
)

// TestInstallPushMatchesDocumentedFixture: an app with an install handler
// gets ONAPPINSTALL in the documented shape, carrying the tokens InstallApp
// returned.
func TestInstallPushMatchesDocumentedFixture(t *testing.T) {
	doc, err := b24event.FormFromJSON(fixture(t, "DOCS-ONAPPINSTALL.json.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sdk, err := b24event.FormFromJSON(phpFixtureAsJSON(t, "FIXTURE-ONAPPINSTALL.php-array.txt"))
	if err != nil || len(keys(sdk, "auth[")) != 11 {
		t.Fatalf("SDK fixture read as %v: %v", keys(sdk, "auth["), err)
	}
	p := newPortal(t, fakeportal.Config{})
	s := newSink(t)
	p.InstallApp(fakeportal.App{ClientID: "quiet", ClientSecret: "s"}) // no install handler: no push
	in := p.InstallApp(fakeportal.App{ClientID: "local.app", ClientSecret: "secret", Version: 3, InstallHandler: s.URL()})
	drain(t, p)
	got := s.events(t)
	if len(got) != 1 {
		t.Fatalf("%d pushes, want 1", len(got))
	}
	fields := got[0].Fields
	// Not an event.bind row: no event_handler_id, as documented.
	if gt, want := topLevel(fields), []string{"event", "data", "ts", "auth"}; !slices.Equal(gt, want) {
		t.Fatalf("top-level order %v, want %v", gt, want)
	}
	if dk, wk := keys(fields, "data"), keys(doc, "data"); !slices.Equal(dk, wk) {
		t.Fatalf("data keys %v, want %v", dk, wk)
	}
	auth := keys(fields, "auth[")
	if want := keys(doc, "auth["); !isSubsequence(want, auth) {
		t.Fatalf("auth keys %v do not contain the documented %v in order", auth, want)
	}
	for _, k := range keys(sdk, "auth[") {
		if !slices.Contains(auth, k) {
			t.Errorf("auth lacks %s, which the SDK fixture has", k)
		}
	}
	ev, err := got[0].Event()
	if err != nil {
		t.Fatalf("ingress parser rejects the push: %v", err)
	}
	if ev.Name != "ONAPPINSTALL" || ev.AccessToken != in.AccessToken || ev.RefreshToken != in.RefreshToken ||
		ev.ApplicationToken != in.ApplicationToken || ev.MemberID != in.MemberID || ev.ClientEndpoint != in.ClientEndpoint {
		t.Fatalf("event %+v, install %+v", ev, in)
	}
	data := got[0].Tree["data"].(map[string]any)
	if data["VERSION"] != "3" || data["ACTIVE"] != "Y" || data["INSTALLED"] != "Y" || data["LANGUAGE_ID"] != "en" {
		t.Fatalf("data %v", data)
	}
	// The pushed token is the install's: it calls REST.
	if st, env := call(t, p, "/rest/app.info", map[string]any{"auth": ev.AccessToken}); st != 200 {
		t.Fatalf("app.info with the pushed token: %d %v", st, env)
	}
}

// phpFixtureAsJSON turns the SDK fixture's PHP array into JSON, enough for
// its flat 'key' => 'value' lines.
func phpFixtureAsJSON(t *testing.T, name string) []byte {
	t.Helper()
	var b strings.Builder
	b.WriteString("{")
	depth := 0
	for _, line := range strings.Split(string(fixture(t, name)), "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, "=>")
		if !ok {
			if strings.HasPrefix(line, "]") && depth > 0 {
				b.WriteString("},")
				depth--
			}
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), "'")
		v = strings.TrimSuffix(strings.TrimSpace(v), ",")
		if v == "[" {
			b.WriteString(`"` + k + `":{`)
			depth++
			continue
		}
		b.WriteString(`"` + k + `":"` + strings.Trim(v, "'") + `",`)
	}
	return []byte(strings.ReplaceAll(strings.ReplaceAll(b.String()+"}", ",}", "}"), ",]", "]"))
}

// TestUninstallApp: ONAPPUNINSTALL goes to the app's own handler only, in
// the documented shape, and then the app's handlers, queue and tokens are
// gone.
func TestUninstallApp(t *testing.T) {
	doc, err := b24event.FormFromJSON(fixture(t, "DOCS-ONAPPUNINSTALL.json.txt"))
	if err != nil {
		t.Fatal(err)
	}
	p := newPortal(t, fakeportal.Config{})
	mine, other, webhook := newSink(t), newSink(t), newSink(t)
	in := bindOnline(t, p, mine.URL(), "ONAPPUNINSTALL", "ONCRMDEALUPDATE")
	if st, env := call(t, p, "/rest/event.bind", map[string]any{"auth": in.AccessToken, "event": "ONCRMDEALADD", "event_type": "offline"}); st != 200 {
		t.Fatalf("bind offline: %v", env)
	}
	p.CreateDeal(nil, true) // a queued offline record
	otherApp := p.InstallApp(fakeportal.App{ClientID: "local.other", ClientSecret: "x"})
	for _, ev := range []string{"ONAPPUNINSTALL", "ONCRMDEALUPDATE"} {
		if st, env := call(t, p, "/rest/event.bind", map[string]any{"auth": otherApp.AccessToken, "event": ev, "handler": other.URL()}); st != 200 {
			t.Fatalf("bind %s: %v", ev, env)
		}
	}
	p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: webhook.URL(), Events: []string{"ONAPPUNINSTALL"}})

	if !p.UninstallApp("local.app") {
		t.Fatal("UninstallApp reports the app was not installed")
	}
	drain(t, p)
	got := mine.events(t)
	if len(got) != 1 || len(other.events(t)) != 0 || len(webhook.events(t)) != 0 {
		t.Fatalf("pushes: app %d, other app %d, webhook %d; want 1, 0, 0", len(got), len(other.events(t)), len(webhook.events(t)))
	}
	fields := got[0].Fields
	if gt, want := topLevel(fields), []string{"event", "event_handler_id", "data", "ts", "auth"}; !slices.Equal(gt, want) {
		t.Fatalf("top-level order %v, want %v", gt, want)
	}
	for _, prefix := range []string{"data", "auth["} {
		if gk, wk := keys(fields, prefix), keys(doc, prefix); !slices.Equal(gk, wk) {
			t.Fatalf("%s keys %v, want exactly %v", prefix, gk, wk)
		}
	}
	ev, err := got[0].Event()
	if err != nil {
		t.Fatalf("ingress parser rejects the push: %v", err)
	}
	if ev.Name != "ONAPPUNINSTALL" || ev.ApplicationToken != in.ApplicationToken || ev.AccessToken != "" || ev.MemberID != p.MemberID() {
		t.Fatalf("event %+v", ev)
	}
	if c := got[0].Tree["data"].(map[string]any)["CLEAN"]; c != "0" {
		t.Fatalf("CLEAN = %v", c)
	}

	// Every handler of the app is gone; the other app's stay.
	for _, b := range p.Bindings() {
		if strings.Contains(b, mine.URL()) || strings.Contains(b, "offline:") {
			t.Errorf("binding left after uninstall: %s", b)
		}
	}
	if len(p.OfflineQueue()) != 0 {
		t.Errorf("offline records left: %v", p.OfflineQueue())
	}
	p.UpdateDeal(1, map[string]string{"TITLE": "after"}, true)
	drain(t, p)
	if n := len(mine.events(t)); n != 1 {
		t.Errorf("the uninstalled app got %d pushes, want only the uninstall", n)
	}
	if n := len(other.events(t)); n != 1 {
		t.Errorf("the other app got %d pushes, want 1", n)
	}
	// Its tokens no longer work.
	if st, env := call(t, p, "/rest/app.info", map[string]any{"auth": in.AccessToken}); st != 401 || env["error"] != "invalid_token" {
		t.Errorf("old access token: %d %v", st, env)
	}
	resp, err := p.Client().PostForm(p.URL()+"/oauth/token/", url.Values{"grant_type": {"refresh_token"},
		"client_id": {"local.app"}, "client_secret": {"secret"}, "refresh_token": {in.RefreshToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("refresh after uninstall answered %d, want 401 invalid_client", resp.StatusCode)
	}
	if p.UninstallApp("local.app") {
		t.Error("a second uninstall found the app")
	}

	// A reinstall starts from nothing: no handlers, fresh tokens.
	in2 := p.InstallApp(fakeportal.App{ClientID: "local.app", ClientSecret: "secret"})
	if st, env := call(t, p, "/rest/event.get", map[string]any{"auth": in2.AccessToken}); st != 200 || len(env["result"].([]any)) != 0 {
		t.Fatalf("event.get after reinstall: %d %v", st, env)
	}
}

// TestReinstallDropsHandlers: installing an installed app again is a
// reinstall; the old install's handlers and tokens do not survive it.
func TestReinstallDropsHandlers(t *testing.T) {
	p := newPortal(t, fakeportal.Config{})
	s := newSink(t)
	old := bindOnline(t, p, s.URL(), "ONCRMDEALUPDATE")
	in := p.InstallApp(fakeportal.App{ClientID: "local.app", ClientSecret: "secret"})
	if b := p.Bindings(); len(b) != 0 {
		t.Fatalf("bindings after reinstall: %v", b)
	}
	p.UpdateDeal(p.CreateDeal(nil, false), map[string]string{"TITLE": "x"}, true)
	drain(t, p)
	if n := len(s.events(t)); n != 0 {
		t.Fatalf("%d pushes to a handler of the previous install", n)
	}
	if st, _ := call(t, p, "/rest/app.info", map[string]any{"auth": old.AccessToken}); st != 401 {
		t.Errorf("the previous install's token answered %d", st)
	}
	if st, _ := call(t, p, "/rest/app.info", map[string]any{"auth": in.AccessToken}); st != 200 {
		t.Errorf("the new token answered %d", st)
	}
}

func TestControlUninstall(t *testing.T) {
	p := newPortal(t, fakeportal.Config{})
	p.InstallApp(fakeportal.App{ClientID: "local.app", ClientSecret: "s"})
	for _, want := range []int{200, 404} {
		resp, err := http.Post(p.URL()+"/_fake/uninstall?client_id=local.app", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("uninstall answered %d, want %d", resp.StatusCode, want)
		}
	}
}
