package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// CookieName is the dashboard session cookie. Its value is an HMAC of the
// token, never the token itself, and it is HttpOnly and SameSite=Strict.
const CookieName = "b24hub_monitor"

// Auth checks the bearer token or the session cookie in constant time.
type Auth struct {
	token   []byte
	session string
}

// NewAuth returns an Auth for token (must not be empty).
func NewAuth(token string) *Auth {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("b24hub-monitor-session-v1"))
	return &Auth{token: []byte(token), session: hex.EncodeToString(mac.Sum(nil))}
}

// Token reports whether t is the token.
func (a *Auth) Token(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), a.token) == 1
}

// SessionCookie is the cookie that logs a browser in.
func (a *Auth) SessionCookie(secure bool) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: a.session, Path: "/", HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600}
}

// how tells how a request authenticated.
type how int

const (
	none how = iota
	bearer
	cookie
)

func (a *Auth) check(r *http.Request) how {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok && a.Token(strings.TrimSpace(t)) {
			return bearer
		}
		return none
	}
	if c, err := r.Cookie(CookieName); err == nil &&
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(a.session)) == 1 {
		return cookie
	}
	return none
}

// Middleware rejects unauthenticated requests with 401. Cookie-authenticated
// requests that change state must be JSON: a cross-site form cannot send
// that without a CORS preflight, which this server never grants.
func (a *Auth) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch a.check(c.Request()) {
		case none:
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="b24hub-monitor"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "authentication required: bearer token or dashboard login")
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
