// Package install verifies ONAPPINSTALL, the one unauthenticated event, and
// registers the portal that sent it.
//
// The ingress forwards an install from a portal it does not know over NATS
// request/reply (eventbus.ControlInstall) with the raw body, tokens
// included, and answers the portal 200 only when the reply says Accepted.
// An install is trusted only after a REST call made with its own access
// token to its own client_endpoint succeeds, and only when that endpoint's
// host (and the server_endpoint's, where refreshes will send the client
// secret) is on the allow-list: nothing is ever sent to a host named by an
// unverified body unless the host is a Bitrix24 cloud domain or configured.
// Then the OAuth credentials are stored encrypted and the portal record is
// written to the portals bucket, which makes the ingress accept its events.
package install

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/allowlist"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/subscriptions/internal/store"
)

// Credentials stores a portal's OAuth credentials (encrypted);
// *bitrix.KVTokenStore on B24_TOKENS implements it, the store every service
// reads installed portals' tokens from.
type Credentials interface {
	Put(ctx context.Context, memberID string, tok bitrix.Token) error
	Delete(ctx context.Context, memberID string) error
}

// PortalRecords writes portal records to the portals bucket.
type PortalRecords interface {
	Put(ctx context.Context, rec portals.Installed) error
}

// Lookup finds a registered portal; *portals.Registry implements it.
type Lookup interface {
	Lookup(memberID string) (portals.Portal, bool)
}

// Auditor records install decisions; *store.Store implements it.
type Auditor interface {
	RecordInstall(ctx context.Context, r store.InstallRecord) error
}

// Config tunes the Verifier.
type Config struct {
	// AllowList decides which hosts may be called (required).
	AllowList *allowlist.List
	// ClientID must equal app.info CODE: only installs of this application
	// are accepted (a token of another app is refused). Without it every
	// install is refused: the verification would fail open.
	ClientID string
	// ClientSecret makes the verification also exchange the install's
	// refresh token at the (allow-listed) OAuth server: the answer names the
	// member_id the tokens belong to, which must be the claimed one, so
	// nobody can register a victim's member id with the tokens of their own
	// free portal. The fresh token pair is what gets stored. Without it
	// every install is refused.
	ClientSecret string
	// Timeout bounds the verification call. Default 5s (the ingress waits
	// for the whole exchange within its publish timeout).
	Timeout time.Duration
	// HTTPClient makes the verification call. Default: a client with
	// Timeout. Redirects are never followed.
	HTTPClient *http.Client
}

// Verifier answers install requests.
type Verifier struct {
	cfg     Config
	http    *http.Client
	creds   Credentials
	records PortalRecords
	lookup  Lookup
	audit   Auditor
	log     *slog.Logger
	now     func() time.Time
	// OnInstalled is called after a portal was registered (e.g. to bind its
	// subscriptions at once). Optional.
	OnInstalled func(memberID string)
}

// New returns a Verifier.
func New(cfg Config, creds Credentials, records PortalRecords, lookup Lookup, audit Auditor, log *slog.Logger) (*Verifier, error) {
	if cfg.AllowList == nil || creds == nil || records == nil || lookup == nil || log == nil {
		return nil, errors.New("install: AllowList, credentials, records, lookup and logger are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	hc := &http.Client{Timeout: cfg.Timeout}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	}
	// A redirect could point the token at a host nobody checked.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Verifier{cfg: cfg, http: hc, creds: creds, records: records, lookup: lookup, audit: audit, log: log, now: time.Now}, nil
}

// Refusal is a reason an install was refused. Its text is safe to return
// to the ingress and to log: it never contains a token.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "install refused: " + r.Reason }

func refuse(format string, a ...any) error { return &Refusal{Reason: fmt.Sprintf(format, a...)} }

// Handle verifies and registers one install. Refusals and failures are
// both answered Accepted=false; the reason says which.
func (v *Verifier) Handle(ctx context.Context, req eventbus.InstallRequest) eventbus.InstallReply {
	rec, err := v.install(ctx, req)
	rec.Event = "ONAPPINSTALL"
	rec.Accepted = err == nil
	if err != nil {
		rec.Reason = err.Error()
	}
	if v.audit != nil && rec.MemberID != "" {
		if aerr := v.audit.RecordInstall(context.WithoutCancel(ctx), rec); aerr != nil {
			v.log.WarnContext(ctx, "install: audit failed", "member_id", rec.MemberID, "error", aerr)
		}
	}
	if err != nil {
		var r *Refusal
		if errors.As(err, &r) {
			v.log.WarnContext(ctx, "install refused", "member_id", rec.MemberID, "domain", rec.Domain, "reason", r.Reason)
		} else {
			v.log.ErrorContext(ctx, "install failed", "member_id", rec.MemberID, "error", err)
		}
		return eventbus.InstallReply{Accepted: false, Reason: err.Error()}
	}
	v.log.InfoContext(ctx, "portal installed", "member_id", rec.MemberID, "domain", rec.Domain)
	if v.OnInstalled != nil {
		v.OnInstalled(rec.MemberID)
	}
	return eventbus.InstallReply{Accepted: true}
}

// Known reports whether req is a reinstall of a portal already installed
// here: its member_id is an installed portal and its application token
// matches the stored one (compared in constant time). Such installs get
// verification slots of their own. It does no I/O.
func (v *Verifier) Known(req eventbus.InstallRequest) bool {
	d, err := b24event.DecodeDelivery(req.ContentType, req.Body, b24event.DefaultLimits())
	if err != nil || d.Event.ApplicationToken == "" {
		return false
	}
	p, ok := v.lookup.Lookup(d.Event.MemberID)
	if !ok || p.Source != portals.SourceInstall || len(p.TokenSHA256) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(portals.HashToken(d.Event.ApplicationToken)), []byte(p.TokenSHA256)) == 1
}

// ErrNotConfigured refuses installs while the application's client id and
// secret are unset: app.info alone proves only that the token works on the
// portal it names, not that the claimed member_id is that portal's.
var ErrNotConfigured = &Refusal{Reason: "install verification is not configured: set B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET"}

// Configured reports whether installs can be verified (and so accepted).
func (v *Verifier) Configured() bool { return v.cfg.ClientID != "" && v.cfg.ClientSecret != "" }

func (v *Verifier) install(ctx context.Context, req eventbus.InstallRequest) (store.InstallRecord, error) {
	var rec store.InstallRecord
	body, err := b24event.Decode(req.ContentType, req.Body, b24event.DefaultLimits())
	if err != nil {
		return rec, refuse("undecodable body: %v", err)
	}
	ev, err := body.Event()
	if err != nil {
		return rec, refuse("malformed event: %v", err)
	}
	rec.MemberID, rec.Domain = ev.MemberID, ev.Domain
	if ev.Name != "ONAPPINSTALL" {
		return rec, refuse("event %s is not ONAPPINSTALL", ev.Name)
	}
	if !v.Configured() {
		return rec, ErrNotConfigured
	}
	switch {
	case ev.ApplicationToken == "":
		return rec, refuse("empty application_token")
	case ev.AccessToken == "":
		return rec, refuse("no access_token to verify the install with")
	case ev.RefreshToken == "":
		return rec, refuse("no refresh_token: the portal could not be called back later")
	}
	endpoint, err := v.cfg.AllowList.Portal(ev.ClientEndpoint)
	if err != nil {
		return rec, refuse("client_endpoint: %v", err)
	}
	rec.ClientEndpoint = endpoint.String()
	if ev.Domain != "" && !strings.EqualFold(ev.Domain, endpoint.Hostname()) && !strings.EqualFold(ev.Domain, endpoint.Host) {
		return rec, refuse("domain %q does not match client_endpoint host %q", ev.Domain, endpoint.Host)
	}
	server, err := v.cfg.AllowList.OAuthServer(ev.ServerEndpoint)
	if err != nil {
		return rec, refuse("server_endpoint: %v", err)
	}
	if p, ok := v.lookup.Lookup(ev.MemberID); ok {
		switch {
		case p.Source == portals.SourceFile:
			return rec, refuse("member_id is configured in the portals file (outgoing-webhook portal); remove it there first")
		case p.Active && p.ClientEndpoint != "" && !sameHost(p.ClientEndpoint, endpoint):
			return rec, refuse("member_id is already installed at another host; uninstall it there first")
		}
	}
	info, err := v.verify(ctx, endpoint, ev.AccessToken)
	if err != nil {
		return rec, err
	}
	if info.Code != v.cfg.ClientID {
		return rec, refuse("the token belongs to application %q, not this one", info.Code)
	}
	auth, _ := body.Tree["auth"].(map[string]any)
	tok := bitrix.Token{
		AccessToken: ev.AccessToken, RefreshToken: ev.RefreshToken,
		Expires:        expiry(auth, v.now()),
		ClientEndpoint: endpoint.String(), ServerEndpoint: server.String(),
		Domain: endpoint.Host, MemberID: ev.MemberID, Scope: str(auth, "scope"),
	}
	if uid, err := strconv.ParseInt(str(auth, "user_id"), 10, 64); err == nil {
		tok.UserID = bitrix.ID(uid)
	}
	if tok, err = v.confirmMember(ctx, server, endpoint, tok); err != nil {
		return rec, err
	}
	if err := v.creds.Put(ctx, ev.MemberID, tok); err != nil {
		return rec, fmt.Errorf("store credentials: %w", err)
	}
	err = v.records.Put(ctx, portals.Installed{
		MemberID: ev.MemberID, Domain: endpoint.Host, TokenSHA256: portals.HashToken(ev.ApplicationToken),
		ClientEndpoint: endpoint.String(), Active: true,
	})
	if err != nil {
		return rec, fmt.Errorf("store portal: %w", err)
	}
	return rec, nil
}

// appInfo is the part of app.info the verification reads.
type appInfo struct {
	Code string `json:"CODE"`
}

// verify calls app.info on the portal with the install's access token.
func (v *Verifier) verify(ctx context.Context, endpoint *url.URL, accessToken string) (appInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	payload, _ := json.Marshal(map[string]string{"auth": accessToken})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.JoinPath("app.info").String(), bytes.NewReader(payload))
	if err != nil {
		return appInfo{}, refuse("cannot build the verification request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "b24hub-subscriptions")
	resp, err := v.http.Do(req)
	if err != nil {
		// Never quote the whole URL error: it can carry the request URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return appInfo{}, fmt.Errorf("verification call to %s failed: %w", endpoint.Host, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return appInfo{}, refuse("verification call to %s answered HTTP %d: the access token is not valid there", endpoint.Host, resp.StatusCode)
	}
	var ans struct {
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || ans.Error != "" || len(ans.Result) == 0 {
		return appInfo{}, refuse("verification call to %s did not return app.info", endpoint.Host)
	}
	var info appInfo
	_ = json.Unmarshal(ans.Result, &info)
	return info, nil
}

// confirmMember exchanges the install's refresh token at the OAuth server
// and checks that the tokens belong to the claimed member id and portal.
// It returns the rotated token pair.
func (v *Verifier) confirmMember(ctx context.Context, server, endpoint *url.URL, tok bitrix.Token) (bitrix.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {v.cfg.ClientID},
		"client_secret": {v.cfg.ClientSecret}, "refresh_token": {tok.RefreshToken}}
	target := server.Scheme + "://" + server.Host + "/oauth/token/"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return tok, refuse("cannot build the token exchange")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := v.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return tok, fmt.Errorf("token exchange at %s failed: %w", server.Host, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var ans struct {
		AccessToken    string  `json:"access_token"`
		RefreshToken   string  `json:"refresh_token"`
		Expires        float64 `json:"expires"`
		MemberID       string  `json:"member_id"`
		ClientEndpoint string  `json:"client_endpoint"`
		Scope          string  `json:"scope"`
		Error          string  `json:"error"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || resp.StatusCode != http.StatusOK || ans.Error != "" || ans.AccessToken == "" {
		return tok, refuse("the OAuth server at %s did not accept the install's refresh token (HTTP %d %s)", server.Host, resp.StatusCode, ans.Error)
	}
	if ans.MemberID != tok.MemberID {
		return tok, refuse("the tokens belong to another portal than the member_id claimed")
	}
	if ans.ClientEndpoint != "" && !sameHost(ans.ClientEndpoint, endpoint) {
		return tok, refuse("the tokens belong to another host than the client_endpoint claimed")
	}
	tok.AccessToken, tok.RefreshToken = ans.AccessToken, ans.RefreshToken
	if ans.Expires > 0 {
		tok.Expires = time.Unix(int64(ans.Expires), 0)
	}
	if ans.Scope != "" {
		tok.Scope = ans.Scope
	}
	return tok, nil
}

// Uninstall deactivates a portal after an authenticated ONAPPUNINSTALL: the
// record stays (so its events are refused with 403, not forgotten) and the
// now useless credentials are deleted.
func (v *Verifier) Uninstall(ctx context.Context, memberID string) error {
	p, ok := v.lookup.Lookup(memberID)
	if !ok || p.Source != portals.SourceInstall {
		return nil // nothing installed (or an operator's file portal): nothing to do
	}
	err := v.records.Put(ctx, portals.Installed{MemberID: p.MemberID, Domain: p.Domain, TokenSHA256: p.TokenSHA256,
		ClientEndpoint: p.ClientEndpoint, Plan: p.Plan, Active: false})
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", memberID, err)
	}
	if err := v.creds.Delete(ctx, memberID); err != nil {
		return err
	}
	if v.audit != nil {
		_ = v.audit.RecordInstall(ctx, store.InstallRecord{MemberID: memberID, Domain: p.Domain,
			ClientEndpoint: p.ClientEndpoint, Event: "ONAPPUNINSTALL", Accepted: true})
	}
	v.log.InfoContext(ctx, "portal uninstalled", "member_id", memberID)
	return nil
}

func sameHost(a string, b *url.URL) bool {
	u, err := url.Parse(a)
	return err == nil && strings.EqualFold(u.Host, b.Host)
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// expiry reads auth[expires] (absolute) or auth[expires_in] (seconds).
func expiry(auth map[string]any, now time.Time) time.Time {
	if n, err := strconv.ParseInt(str(auth, "expires"), 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0)
	}
	if n, err := strconv.ParseInt(str(auth, "expires_in"), 10, 64); err == nil && n > 0 {
		return now.Add(time.Duration(n) * time.Second)
	}
	return now.Add(time.Hour)
}
