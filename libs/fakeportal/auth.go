package fakeportal

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
)

// App is an application installed on the portal.
type App struct {
	// ClientID and ClientSecret are the app's OAuth credentials. Required.
	ClientID     string
	ClientSecret string // see ClientID
	// ApplicationToken is sent in every event's auth block (§3.6). Default:
	// generated.
	ApplicationToken string
	// Scope is the granted scope list. Default "crm,task,telephony,disk".
	Scope string
	// Status is the app status letter (§3.2). Default "L" (local).
	Status string
	// UserID is the installing admin; tokens belong to this user. Default 1.
	UserID int64
	// AccessToken and RefreshToken are the initial tokens; generated when
	// empty.
	AccessToken  string
	RefreshToken string // see AccessToken
	// Code and Version answer app.info. Default "b24hub", 1.
	Code    string
	Version int // see Code
	// NotInstalled models an app whose install has not finished: events are
	// not delivered to it (§1.5) and app.info says INSTALLED=false.
	NotInstalled bool
	// InstallHandler is the URL the portal POSTs ONAPPINSTALL to when the
	// app is installed (a local app's handler path); it needs no
	// event.bind. Optional: without it InstallApp pushes nothing, and the
	// caller hands the Install over itself.
	InstallHandler string
}

// Install is what the portal hands an app on install (the ONAPPINSTALL auth
// block), enough to build an OAuth client. Field names follow that block;
// ServerEndpoint is this fake's own OAuth server.
type Install struct {
	MemberID         string
	Domain           string
	ClientEndpoint   string
	ServerEndpoint   string
	ClientID         string
	ClientSecret     string
	ApplicationToken string
	AccessToken      string
	RefreshToken     string
	Expires          time.Time
	Scope            string
	UserID           int64
}

type app struct {
	App
}

type grant struct {
	app     *app
	userID  int64
	expires time.Time
	refresh string // refresh token issued with it (access grants only)
}

func token() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// InstallApp registers an app install and returns its credentials. With
// App.InstallHandler set it also POSTs ONAPPINSTALL there, carrying the same
// tokens (data VERSION, ACTIVE, INSTALLED, LANGUAGE_ID; §3.3); like every
// push it is sent once and may be dropped by Faults.DropRate, so wait for
// it with Drain and check Deliveries. Installing a client ID that is
// already installed is a reinstall: the previous install's event
// handlers, offline records and tokens are gone first (§1.2), without an
// ONAPPUNINSTALL.
func (p *Portal) InstallApp(a App) Install {
	if a.ApplicationToken == "" {
		a.ApplicationToken = token()
	}
	if a.Scope == "" {
		a.Scope = "crm,task,telephony,disk"
	}
	if a.Status == "" {
		a.Status = "L"
	}
	if a.UserID == 0 {
		a.UserID = 1
	}
	if a.AccessToken == "" {
		a.AccessToken = token()
	}
	if a.RefreshToken == "" {
		a.RefreshToken = token()
	}
	if a.Code == "" {
		a.Code = "b24hub"
	}
	if a.Version == 0 {
		a.Version = 1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.apps[a.ClientID]; old != nil {
		p.removeApp(old)
	}
	ap := &app{App: a}
	p.apps[a.ClientID] = ap
	exp := p.cfg.Clock.Now().Add(p.cfg.TokenTTL)
	p.access[a.AccessToken] = &grant{app: ap, userID: a.UserID, expires: exp, refresh: a.RefreshToken}
	p.refresh[a.RefreshToken] = &grant{app: ap, userID: a.UserID}
	in := Install{
		MemberID: p.cfg.MemberID, Domain: p.domain, ClientEndpoint: "http://" + p.domain + "/rest/",
		ServerEndpoint: p.base + "/rest/", ClientID: a.ClientID, ClientSecret: a.ClientSecret,
		ApplicationToken: a.ApplicationToken, AccessToken: a.AccessToken, RefreshToken: a.RefreshToken,
		Expires: exp, Scope: a.Scope, UserID: a.UserID,
	}
	if a.InstallHandler != "" && !p.closed {
		p.push1(&handler{app: ap, event: "ONAPPINSTALL", url: a.InstallHandler},
			firing{event: "ONAPPINSTALL", data: installData(ap), userID: a.UserID, install: &in}, p.cfg.Clock.Now())
	}
	return in
}

// installData is ONAPPINSTALL's data block (§3.3). INSTALLED is "N" while
// an app with UI has not finished its install (§1.5).
func installData(a *app) []b24event.Field {
	installed := "Y"
	if a.NotInstalled {
		installed = "N"
	}
	return []b24event.Field{{Key: "[VERSION]", Value: strconv.Itoa(a.Version)}, {Key: "[ACTIVE]", Value: "Y"},
		{Key: "[INSTALLED]", Value: installed}, {Key: "[LANGUAGE_ID]", Value: "en"}}
}

// UninstallApp deletes an installed app as an admin does in Bitrix24. The
// app's online ONAPPUNINSTALL handlers get the event (data LANGUAGE_ID and
// CLEAN=0, "keep the data"; an auth block without tokens, §3.3); it is
// queued before anything is removed. Then every event handler of the app
// goes (EventTable::deleteByApp, §1.2), with its offline-queue records and
// tokens: calls with them answer 401 invalid_token and refreshing answers
// invalid_client. It reports whether the app was installed.
func (p *Portal) UninstallApp(clientID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[clientID]
	if a == nil {
		return false
	}
	p.dispatchLocked([]firing{{event: "ONAPPUNINSTALL", onlyApp: a,
		data: []b24event.Field{{Key: "[LANGUAGE_ID]", Value: "en"}, {Key: "[CLEAN]", Value: "0"}}}})
	p.removeApp(a)
	return true
}

// removeApp drops an app with its handlers, offline records and tokens.
// Pushes already queued are still sent. Caller holds p.mu.
func (p *Portal) removeApp(a *app) {
	kept := p.handlers[:0]
	for _, h := range p.handlers {
		if h.app == a {
			delete(p.lastNotify, h.id)
			continue
		}
		kept = append(kept, h)
	}
	clear(p.handlers[len(kept):])
	p.handlers = kept
	records := p.offline[:0]
	for _, r := range p.offline {
		if r.app != a {
			records = append(records, r)
		}
	}
	clear(p.offline[len(records):])
	p.offline = records
	for t, g := range p.access {
		if g.app == a {
			delete(p.access, t)
		}
	}
	for t, g := range p.refresh {
		if g.app == a {
			delete(p.refresh, t)
		}
	}
	if p.apps[a.ClientID] == a {
		delete(p.apps, a.ClientID)
	}
}

// FinishInstall marks an app installed (BX24.installFinish, §1.5).
func (p *Portal) FinishInstall(clientID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.apps[clientID]; a != nil {
		a.NotInstalled = false
	}
}

// AddWebhook registers an incoming webhook and returns its base URL,
// http://{domain}/rest/{user}/{code}/.
func (p *Portal) AddWebhook(userID int64, code string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.webhooks[code] = userID
	return "http://" + p.domain + "/rest/" + strconv.FormatInt(userID, 10) + "/" + code + "/"
}

// ExpireTokens makes every access token issued so far expired (§4.2:
// expired_token), leaving refresh tokens valid.
func (p *Portal) ExpireTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	past := p.cfg.Clock.Now().Add(-time.Second)
	for _, g := range p.access {
		g.expires = past
	}
}

// RevokeRefreshTokens invalidates an app's refresh tokens, so the next
// refresh fails with invalid_grant (the app must be re-authorized).
func (p *Portal) RevokeRefreshTokens(clientID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, g := range p.refresh {
		if g.app.ClientID == clientID {
			delete(p.refresh, t)
		}
	}
}

// authenticate resolves the caller from the path (/rest/{user}/{code}/m)
// or the auth parameter (/rest/m). Caller holds p.mu.
func (p *Portal) authenticate(segs []string, prm params, now time.Time) (principal, *apiError) {
	switch len(segs) {
	case 3:
		user, err := strconv.ParseInt(segs[0], 10, 64)
		if u, ok := p.webhooks[segs[1]]; !ok || err != nil || u != user {
			return principal{}, errNoAuth
		}
		return principal{webhook: segs[1], userID: user}, nil
	case 1:
		tok := prm.str("auth")
		if tok == "" {
			return principal{}, errNoAuth
		}
		g := p.access[tok]
		if g == nil {
			return principal{}, &apiError{401, "invalid_token", "Unable to get application by token"}
		}
		if !now.Before(g.expires) {
			return principal{}, &apiError{401, "expired_token", "The access token provided has expired."}
		}
		return principal{app: g.app, userID: g.userID}, nil
	}
	return principal{}, errMethodNotFound
}

// serveToken is the OAuth server (§4.2): grant_type=refresh_token by GET
// query or POST form. Each refresh rotates the refresh token.
func (p *Portal) serveToken(w http.ResponseWriter, r *http.Request) {
	vals := r.URL.Query()
	if r.Method == http.MethodPost {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if form, err := url.ParseQuery(string(b)); err == nil {
			for k, v := range form {
				vals[k] = v
			}
		}
	}
	fail := func(status int, code, desc string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if vals.Get("grant_type") != "refresh_token" {
		fail(400, "invalid_request", "Only grant_type=refresh_token is supported by the fake")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[vals.Get("client_id")]
	if a == nil || a.ClientSecret != vals.Get("client_secret") {
		fail(401, "invalid_client", "Invalid client credentials")
		return
	}
	old := p.refresh[vals.Get("refresh_token")]
	if old == nil || old.app != a {
		fail(400, "invalid_grant", "Invalid grant")
		return
	}
	delete(p.refresh, vals.Get("refresh_token"))
	now := p.cfg.Clock.Now()
	at, rt := token(), token()
	exp := now.Add(p.cfg.TokenTTL)
	p.access[at] = &grant{app: a, userID: old.userID, expires: exp, refresh: rt}
	p.refresh[rt] = &grant{app: a, userID: old.userID}
	p.stats.Refreshes++
	su, _ := url.Parse(p.base)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at, "expires": exp.Unix(), "expires_in": int(p.cfg.TokenTTL.Seconds()),
		"scope": a.Scope,
		// The real server answers with its own domain here, not the
		// portal's (§4.2).
		"domain":          su.Host,
		"server_endpoint": p.base + "/rest/", "status": a.Status,
		"client_endpoint": "http://" + p.domain + "/rest/", "member_id": p.cfg.MemberID,
		"user_id": old.userID, "refresh_token": rt,
	})
}
