package bitrix

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// OAuthConfig authenticates a Client as an OAuth application (§4.1, §4.2).
type OAuthConfig struct {
	// ClientID and ClientSecret are the application's credentials. Required.
	ClientID     string
	ClientSecret string // see ClientID
	// MemberID is the portal's member_id: the TokenStore key and the
	// limiter key. Required.
	MemberID string
	// Store holds the portal's Token. Required; it must already contain a
	// token (from the install event or an authorization-code exchange).
	Store TokenStore
	// LeaseTTL bounds how long one replica may hold the refresh lease before
	// another may take over. Default 30s.
	LeaseTTL time.Duration
	// ClientEndpoint is the portal's REST base (https://{portal}/rest/),
	// e.g. from the portal registry, used while the stored token names
	// none. Optional: the stored token's client_endpoint wins, because the
	// client keeps it current when the portal is renamed (§4.1).
	ClientEndpoint string
}

// Validate checks required fields.
func (c *OAuthConfig) Validate() error {
	switch {
	case c.ClientID == "" || c.ClientSecret == "":
		return errors.New("bitrix: OAuth ClientID and ClientSecret are required")
	case c.MemberID == "":
		return errors.New("bitrix: OAuth MemberID is required")
	case c.Store == nil:
		return errors.New("bitrix: OAuth Store is required")
	case c.LeaseTTL < 0:
		return errors.New("bitrix: OAuth LeaseTTL must not be negative")
	}
	return nil
}

// oauthAuth supplies access tokens and refreshes them, once per expiry
// across every replica sharing the store:
//
//   - in-process, concurrent 401s coalesce on a singleflight per member_id;
//   - across processes, the refresher first wins a CAS that sets a lease on
//     the stored token, so the OAuth server sees exactly one refresh; the
//     others wait for the stored access token to change (§4.2: "single-flight
//     per member_id plus persistent storage with compare-and-swap").
type oauthAuth struct {
	cfg    OAuthConfig
	owner  string // lease owner id, unique per client instance
	http   *http.Client
	clock  Clock
	log    *slog.Logger
	tel    *telemetry
	flight singleflight.Group

	mu     sync.Mutex
	cached *Token
}

func newOAuthAuth(cfg OAuthConfig, hc *http.Client, clock Clock, log *slog.Logger, tel *telemetry) *oauthAuth {
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &oauthAuth{cfg: cfg, owner: hex.EncodeToString(b[:]), http: hc, clock: clock, log: log, tel: tel}
}

// token returns the cached token, loading it from the store the first time.
func (o *oauthAuth) token(ctx context.Context) (Token, error) {
	o.mu.Lock()
	if o.cached != nil {
		t := *o.cached
		o.mu.Unlock()
		return t, nil
	}
	o.mu.Unlock()
	t, _, err := o.cfg.Store.Load(ctx, o.cfg.MemberID)
	if err != nil {
		return Token{}, fmt.Errorf("bitrix: load token for %s: %w", o.cfg.MemberID, err)
	}
	o.setCached(t)
	return t, nil
}

func (o *oauthAuth) setCached(t Token) {
	o.mu.Lock()
	o.cached = &t
	o.mu.Unlock()
}

// refresh replaces the access token that just failed (stale) with a valid
// one, calling the OAuth server only if nobody else already did.
func (o *oauthAuth) refresh(ctx context.Context, stale string) (Token, error) {
	ch := o.flight.DoChan(o.cfg.MemberID, func() (any, error) {
		// Detached from the first caller's cancellation: other callers share
		// the result, and a half-finished rotation must still be persisted.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.LeaseTTL)
		defer cancel()
		return o.refreshShared(rctx, stale)
	})
	select {
	case <-ctx.Done():
		return Token{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return Token{}, r.Err
		}
		return r.Val.(Token), nil
	}
}

func (o *oauthAuth) refreshShared(ctx context.Context, stale string) (Token, error) {
	store, member := o.cfg.Store, o.cfg.MemberID
	poll := 50 * time.Millisecond
	for {
		tok, rev, err := store.Load(ctx, member)
		if err != nil {
			return Token{}, fmt.Errorf("bitrix: load token for %s: %w", member, err)
		}
		if tok.AccessToken != stale && tok.AccessToken != "" {
			// Another client or replica already refreshed.
			o.setCached(tok)
			return tok, nil
		}
		now := o.clock.Now()
		if tok.LeaseOwner != "" && tok.LeaseOwner != o.owner && now.Before(tok.LeaseUntil) {
			if err := o.clock.Sleep(ctx, poll); err != nil {
				return Token{}, err
			}
			poll = min(2*poll, time.Second)
			continue
		}
		leased := tok
		leased.LeaseOwner, leased.LeaseUntil = o.owner, now.Add(o.cfg.LeaseTTL)
		leaseRev, err := store.CompareAndSwap(ctx, member, rev, leased)
		if errors.Is(err, ErrTokenConflict) {
			continue
		}
		if err != nil {
			return Token{}, fmt.Errorf("bitrix: lease token for %s: %w", member, err)
		}
		fresh, err := o.exchange(ctx, tok)
		if err != nil {
			tok.LeaseOwner, tok.LeaseUntil = "", time.Time{}
			if _, rerr := store.CompareAndSwap(ctx, member, leaseRev, tok); rerr != nil {
				o.log.WarnContext(ctx, "bitrix: release refresh lease", "member_id", member, "err", rerr)
			}
			return Token{}, err
		}
		if err := o.persist(ctx, leaseRev, tok, fresh); err != nil {
			return Token{}, err
		}
		o.setCached(fresh)
		o.log.InfoContext(ctx, "bitrix: access token refreshed", "member_id", member)
		return fresh, nil
	}
}

// persist stores the rotated token. The old refresh token is already dead, so
// losing the new one would force a re-authorization: if the lease expired and
// the revision moved, overwrite anyway as long as nobody stored a newer
// rotation.
func (o *oauthAuth) persist(ctx context.Context, rev uint64, old, fresh Token) error {
	store, member := o.cfg.Store, o.cfg.MemberID
	for range 5 {
		_, err := store.CompareAndSwap(ctx, member, rev, fresh)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrTokenConflict) {
			return fmt.Errorf("bitrix: persist rotated token for %s: %w", member, err)
		}
		cur, curRev, lerr := store.Load(ctx, member)
		if lerr != nil {
			return fmt.Errorf("bitrix: persist rotated token for %s: %w", member, lerr)
		}
		if cur.RefreshToken != old.RefreshToken {
			// Someone rotated after our lease expired; theirs is newer.
			return fmt.Errorf("bitrix: persist rotated token for %s: %w", member, ErrTokenConflict)
		}
		rev = curRev
	}
	return fmt.Errorf("bitrix: persist rotated token for %s: %w", member, ErrTokenConflict)
}

// exchange calls {server_endpoint host}/oauth/token/ with grant_type
// refresh_token. Parameters go form-encoded in a POST body, as b24jssdk does
// against the real servers, to keep the secret out of URLs and logs (§4.2).
func (o *oauthAuth) exchange(ctx context.Context, tok Token) (Token, error) {
	fail := func(e *Error) (Token, error) {
		e.Method, e.Portal = "oauth/token", o.cfg.MemberID
		o.tel.refresh(ctx, o.cfg.MemberID, e)
		return Token{}, e
	}
	if tok.RefreshToken == "" {
		return fail(&Error{Code: CodeInvalidGrant, Description: "no refresh token stored"})
	}
	su, err := url.Parse(tok.ServerEndpoint)
	if err != nil || su.Host == "" {
		return fail(&Error{Description: fmt.Sprintf("token has no usable server_endpoint %q", tok.ServerEndpoint), kind: KindAuth})
	}
	endpoint := su.Scheme + "://" + su.Host + "/oauth/token/"
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {o.cfg.ClientID},
		"client_secret": {o.cfg.ClientSecret},
		"refresh_token": {tok.RefreshToken},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fail(&Error{Err: err, kind: KindPermanent})
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := o.http.Do(req)
	if err != nil {
		return fail(&Error{Err: err, kind: KindTransient})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail(&Error{Status: resp.StatusCode, Err: err, kind: KindTransient})
	}
	var ans struct {
		AccessToken      string    `json:"access_token"`
		RefreshToken     string    `json:"refresh_token"`
		Expires          flexFloat `json:"expires"`
		ExpiresIn        flexFloat `json:"expires_in"`
		ClientEndpoint   string    `json:"client_endpoint"`
		ServerEndpoint   string    `json:"server_endpoint"`
		MemberID         string    `json:"member_id"`
		Scope            string    `json:"scope"`
		UserID           ID        `json:"user_id"`
		Error            string    `json:"error"`
		ErrorDescription string    `json:"error_description"`
	}
	if jerr := json.Unmarshal(body, &ans); jerr != nil {
		return fail(&Error{Status: resp.StatusCode, Description: "unexpected non-JSON answer: " + snippet(body), kind: KindTransient})
	}
	if ans.Error != "" || resp.StatusCode >= 400 || ans.AccessToken == "" {
		e := &Error{Status: resp.StatusCode, Code: ans.Error, Description: ans.ErrorDescription}
		if e.Code == "" && resp.StatusCode < 500 {
			e.kind = KindAuth
		}
		return fail(e)
	}
	fresh := tok
	fresh.AccessToken, fresh.RefreshToken = ans.AccessToken, ans.RefreshToken
	fresh.LeaseOwner, fresh.LeaseUntil = "", time.Time{}
	switch {
	case ans.Expires > 0:
		fresh.Expires = time.Unix(int64(ans.Expires), 0)
	case ans.ExpiresIn > 0:
		fresh.Expires = o.clock.Now().Add(time.Duration(ans.ExpiresIn) * time.Second)
	}
	if ans.ClientEndpoint != "" {
		fresh.ClientEndpoint = ans.ClientEndpoint
	}
	if ans.ServerEndpoint != "" {
		fresh.ServerEndpoint = ans.ServerEndpoint
	}
	if ans.Scope != "" {
		fresh.Scope = ans.Scope
	}
	if ans.UserID != 0 {
		fresh.UserID = ans.UserID
	}
	if fresh.MemberID == "" {
		fresh.MemberID = ans.MemberID
	}
	o.tel.refresh(ctx, o.cfg.MemberID, nil)
	return fresh, nil
}

// rebase records a new client_endpoint after a portal rename (§4.1), in the
// cache and, best effort, in the store.
func (o *oauthAuth) rebase(ctx context.Context, endpoint, domain string) {
	o.mu.Lock()
	if o.cached != nil {
		o.cached.ClientEndpoint, o.cached.Domain = endpoint, domain
	}
	o.mu.Unlock()
	for range 3 {
		tok, rev, err := o.cfg.Store.Load(ctx, o.cfg.MemberID)
		if err != nil {
			return
		}
		tok.ClientEndpoint, tok.Domain = endpoint, domain
		if _, err := o.cfg.Store.CompareAndSwap(ctx, o.cfg.MemberID, rev, tok); !errors.Is(err, ErrTokenConflict) {
			return
		}
	}
}
