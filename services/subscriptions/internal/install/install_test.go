package install

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/allowlist"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/subscriptions/internal/store"
)

type memCreds map[string]bitrix.Token

func (m memCreds) Put(_ context.Context, id string, t bitrix.Token) error { m[id] = t; return nil }
func (m memCreds) Delete(_ context.Context, id string) error              { delete(m, id); return nil }

type memRecords map[string]portals.Installed

func (m memRecords) Put(_ context.Context, r portals.Installed) error { m[r.MemberID] = r; return nil }

type memLookup map[string]portals.Portal

func (m memLookup) Lookup(id string) (portals.Portal, bool) { p, ok := m[id]; return p, ok }

type memAudit []store.InstallRecord

func (m *memAudit) RecordInstall(_ context.Context, r store.InstallRecord) error {
	*m = append(*m, r)
	return nil
}

const (
	goodToken = "good-access-token"
	member    = "a223c6b3710f85df22e9377d6c4f7553"
)

// portal answers app.info for goodToken and 401 otherwise; it counts calls.
func portal(t *testing.T, calls *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path == "/oauth/token/" {
			_ = r.ParseForm()
			m := member
			if r.PostForm.Get("refresh_token") == "other-portal" {
				m = "ffff0000ffff0000ffff0000ffff0000"
			}
			if r.PostForm.Get("client_secret") != "s" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
				return
			}
			_, _ = io.WriteString(w, `{"access_token":"rotated-access","refresh_token":"rotated-refresh","expires":4102444800,"member_id":"`+m+`"}`)
			return
		}
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		switch {
		case r.URL.Path == "/rest/redirect/app.info":
			http.Redirect(w, r, "http://169.254.169.254/rest/app.info", http.StatusFound)
		case r.URL.Path != "/rest/app.info":
			http.NotFound(w, r)
		case body["auth"] != goodToken:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_token","error_description":"Unable to get application by token"}`)
		default:
			_, _ = io.WriteString(w, `{"result":{"ID":"7","CODE":"local.app.1","INSTALLED":true},"time":{}}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func installBody(endpoint, server, access, appToken string) []byte {
	return installBodyRefresh(endpoint, server, access, appToken, "refresh-1")
}

func installBodyRefresh(endpoint, server, access, appToken, refresh string) []byte {
	host := strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
	host, _, _ = strings.Cut(host, "/")
	v := url.Values{}
	v.Set("event", "ONAPPINSTALL")
	v.Set("data[VERSION]", "1")
	v.Set("ts", "1727018926")
	v.Set("auth[access_token]", access)
	v.Set("auth[refresh_token]", refresh)
	v.Set("auth[expires_in]", "3600")
	v.Set("auth[scope]", "crm,task")
	v.Set("auth[domain]", host)
	v.Set("auth[server_endpoint]", server)
	v.Set("auth[client_endpoint]", endpoint)
	v.Set("auth[member_id]", member)
	v.Set("auth[user_id]", "1")
	v.Set("auth[application_token]", appToken)
	return []byte(v.Encode())
}

func TestHandle(t *testing.T) {
	var calls atomic.Int32
	srv := portal(t, &calls)
	host := strings.TrimPrefix(srv.URL, "http://")
	endpoint := srv.URL + "/rest/"
	server := srv.URL + "/rest/"
	tests := []struct {
		name       string
		body       []byte
		clientID   string
		secret     string
		noApp      bool // clientID and secret stay as given ("" when unset)
		existing   *portals.Portal
		accepted   bool
		reason     string
		wantCalled bool
	}{
		// Without the application's client id and secret the member_id
		// cannot be confirmed, so nothing is accepted (and nothing called).
		{name: "no client id or secret", body: installBody(endpoint, server, goodToken, "app-token"), noApp: true, reason: "not configured"},
		{name: "client id without secret", body: installBody(endpoint, server, goodToken, "app-token"), noApp: true, clientID: "local.app.1", reason: "not configured"},
		{name: "secret without client id", body: installBody(endpoint, server, goodToken, "app-token"), noApp: true, secret: "s", reason: "not configured"},
		{name: "member confirmed", body: installBody(endpoint, server, goodToken, "app-token"), clientID: "local.app.1", secret: "s", accepted: true, wantCalled: true},
		{name: "tokens of another portal", body: installBodyRefresh(endpoint, server, goodToken, "app-token", "other-portal"), clientID: "local.app.1", secret: "s", reason: "another portal", wantCalled: true},
		{name: "wrong client secret", body: installBody(endpoint, server, goodToken, "app-token"), clientID: "local.app.1", secret: "bad", reason: "did not accept", wantCalled: true},
		{name: "other application", body: installBody(endpoint, server, goodToken, "app-token"), clientID: "local.app.2", reason: "application", wantCalled: true},
		{name: "bad token", body: installBody(endpoint, server, "forged", "app-token"), reason: "HTTP 401", wantCalled: true},
		{name: "unknown host", body: installBody("https://evil.example.com/rest/", server, goodToken, "app-token"), reason: "client_endpoint"},
		{name: "cloud look-alike", body: installBody("https://acme.bitrix24.com.evil.com/rest/", server, goodToken, "app-token"), reason: "client_endpoint"},
		{name: "unknown oauth server", body: installBody(endpoint, "https://oauth.evil.com/rest/", goodToken, "app-token"), reason: "server_endpoint"},
		{name: "empty application token", body: installBody(endpoint, server, goodToken, ""), reason: "application_token"},
		{name: "redirect not followed", body: installBody(srv.URL+"/rest/redirect/", server, goodToken, "app-token"), reason: "HTTP 302", wantCalled: true},
		{name: "not an install", body: []byte("event=ONCRMDEALADD&auth[member_id]=" + member), reason: "not ONAPPINSTALL"},
		{name: "garbage", body: []byte("%zz"), reason: "undecodable"},
		{name: "file portal", body: installBody(endpoint, server, goodToken, "app-token"),
			existing: &portals.Portal{MemberID: member, Source: portals.SourceFile, Active: true}, reason: "portals file"},
		{name: "installed elsewhere", body: installBody(endpoint, server, goodToken, "app-token"),
			existing: &portals.Portal{MemberID: member, Source: portals.SourceInstall, Active: true, ClientEndpoint: "https://acme.bitrix24.com/rest/"}, reason: "another host"},
		{name: "reinstall after uninstall", body: installBody(endpoint, server, goodToken, "app-token"),
			existing: &portals.Portal{MemberID: member, Source: portals.SourceInstall, Active: false, ClientEndpoint: "https://acme.bitrix24.com/rest/"}, accepted: true, wantCalled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			allow, _ := allowlist.New([]string{host})
			creds, records, lookup, audit := memCreds{}, memRecords{}, memLookup{}, &memAudit{}
			if tt.existing != nil {
				lookup[member] = *tt.existing
			}
			if !tt.noApp && tt.clientID == "" {
				tt.clientID = "local.app.1"
			}
			if !tt.noApp && tt.secret == "" {
				tt.secret = "s"
			}
			v, err := New(Config{AllowList: allow, ClientID: tt.clientID, ClientSecret: tt.secret}, creds, records, lookup, audit, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			rep := v.Handle(context.Background(), eventbus.InstallRequest{ContentType: "application/x-www-form-urlencoded", Body: tt.body})
			if rep.Accepted != tt.accepted || !strings.Contains(rep.Reason, tt.reason) {
				t.Fatalf("reply = %+v, want accepted=%v reason~%q", rep, tt.accepted, tt.reason)
			}
			if called := calls.Load() > 0; called != tt.wantCalled {
				t.Errorf("portal called = %v, want %v", called, tt.wantCalled)
			}
			if strings.Contains(rep.Reason, goodToken) || strings.Contains(rep.Reason, "refresh-1") {
				t.Errorf("reason leaks a token: %s", rep.Reason)
			}
			if !tt.accepted {
				if len(creds) != 0 || len(records) != 0 {
					t.Fatalf("refused install stored something: %v %v", creds, records)
				}
				return
			}
			tok := creds[member]
			rec := records[member]
			wantAccess, wantRefresh := "rotated-access", "rotated-refresh"
			if tok.AccessToken != wantAccess || tok.RefreshToken != wantRefresh || tok.ClientEndpoint != endpoint || tok.ServerEndpoint != server || tok.Expires.IsZero() {
				t.Errorf("token = %+v", tok)
			}
			if !rec.Active || rec.TokenSHA256 != portals.HashToken("app-token") || rec.ClientEndpoint != endpoint {
				t.Errorf("record = %+v", rec)
			}
			if len(*audit) != 1 || !(*audit)[0].Accepted {
				t.Errorf("audit = %+v", *audit)
			}
		})
	}
}

func TestUninstall(t *testing.T) {
	allow, _ := allowlist.New(nil)
	creds := memCreds{member: {AccessToken: "x"}}
	records := memRecords{}
	lookup := memLookup{member: {MemberID: member, Source: portals.SourceInstall, Active: true, TokenSHA256: portals.HashToken("t"), ClientEndpoint: "https://a.bitrix24.com/rest/"}}
	v, _ := New(Config{AllowList: allow}, creds, records, lookup, &memAudit{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := v.Uninstall(context.Background(), member); err != nil {
		t.Fatal(err)
	}
	if rec := records[member]; rec.Active || rec.TokenSHA256 != portals.HashToken("t") {
		t.Errorf("record = %+v", rec)
	}
	if _, ok := creds[member]; ok {
		t.Error("credentials kept after uninstall")
	}
}
