package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/svcmain/keyrate"
	"github.com/labstack/echo/v4"
)

// CookieName is the dashboard session cookie. Its value is a random session
// id (never the token), HttpOnly and SameSite=Strict; the server keeps only
// its hash, with an expiry, and can revoke it.
const CookieName = "b24hub_monitor"

// Sessions keeps dashboard sessions; *session.Store implements it.
type Sessions interface {
	Create(ctx context.Context) (id string, expires time.Time, err error)
	Valid(ctx context.Context, id string) (bool, error)
	Revoke(ctx context.Context, id string) error
	RevokeAll(ctx context.Context) (int64, error)
}

// Failed sign-ins (a wrong token on the login form, in ?token= or as a
// bearer) allowed per client address: a burst of 5, then one every 12
// seconds. Past it the address gets 429 until a token comes back.
const (
	failedSignInBurst = 5
	failedSignInEvery = 12 * time.Second
)

// Auth checks the bearer token or the session cookie. The token is
// compared by its SHA-256, so the comparison takes the same time whatever
// the length of the guess.
type Auth struct {
	token    [sha256.Size]byte
	sessions Sessions
	failures *keyrate.Limiter
}

// NewAuth returns an Auth for token (must not be empty) keeping its
// dashboard sessions in sessions.
func NewAuth(token string, sessions Sessions) *Auth {
	return &Auth{token: sha256.Sum256([]byte(token)), sessions: sessions,
		failures: keyrate.New(failedSignInEvery, failedSignInBurst, 10_000)}
}

// Token reports whether t is the token, in time independent of t.
func (a *Auth) Token(t string) bool {
	h := sha256.Sum256([]byte(t))
	return subtle.ConstantTimeCompare(h[:], a.token[:]) == 1
}

// Limited reports whether the client address has used up its failed
// sign-ins.
func (a *Auth) Limited(client string) bool { return a.failures.Exhausted(client) }

// Failed records a failed sign-in from client.
func (a *Auth) Failed(client string) { a.failures.Allow(client) }

// NewSession starts a session and returns the cookie that carries it.
func (a *Auth) NewSession(ctx context.Context, secure bool) (*http.Cookie, error) {
	id, expires, err := a.sessions.Create(ctx)
	if err != nil {
		return nil, err
	}
	return &http.Cookie{Name: CookieName, Value: id, Path: "/", HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, Expires: expires, MaxAge: int(time.Until(expires).Seconds())}, nil
}

// EndSession revokes the request's session, if any, and returns the cookie
// that clears it in the browser.
func (a *Auth) EndSession(r *http.Request, secure bool) (*http.Cookie, error) {
	var err error
	if c, cerr := r.Cookie(CookieName); cerr == nil && c.Value != "" {
		err = a.sessions.Revoke(r.Context(), c.Value)
	}
	return &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, MaxAge: -1}, err
}

// how tells how a request authenticated.
type how int

const (
	none how = iota
	bearer
	cookie
	wrongBearer // a bearer token was sent and is wrong
	unavailable // the session store could not be asked
)

func (a *Auth) check(r *http.Request) how {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok && a.Token(strings.TrimSpace(t)) {
			return bearer
		}
		return wrongBearer
	}
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return none
	}
	ok, err := a.sessions.Valid(r.Context(), c.Value)
	switch {
	case err != nil:
		return unavailable
	case ok:
		return cookie
	}
	return none
}

// Middleware rejects unauthenticated requests with 401 (429 for an address
// that used up its failed attempts). Cookie-authenticated requests that
// change state must be JSON: a cross-site form cannot send that without a
// CORS preflight, which this server never grants.
func (a *Auth) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a.Limited(c.RealIP()) {
			return echo.NewHTTPError(http.StatusTooManyRequests, "too many failed sign-ins from this address; retry later")
		}
		switch a.check(c.Request()) {
		case wrongBearer:
			a.Failed(c.RealIP())
			fallthrough
		case none:
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="b24hub-monitor"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "authentication required: bearer token or dashboard login")
		case unavailable:
			return echo.NewHTTPError(http.StatusServiceUnavailable, "sessions unavailable; use the bearer token or retry")
		case cookie:
			if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead {
				ct, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
				if ct != "application/json" {
					return echo.NewHTTPError(http.StatusUnsupportedMediaType, "state-changing requests must be application/json")
				}
			}
		}
		return next(c)
	}
}

// Bearer lets only requests with the bearer token through: revoking every
// session is not something a session may do.
func (a *Auth) Bearer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a.check(c.Request()) != bearer {
			return echo.NewHTTPError(http.StatusForbidden, "this needs the API token as a bearer, not a dashboard session")
		}
		return next(c)
	}
}
