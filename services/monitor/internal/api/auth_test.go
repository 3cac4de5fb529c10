package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/services/monitor/internal/api"
	"github.com/labstack/echo/v4"
)

// memSessions is a hand-written Sessions for the middleware's tests; the
// PostgreSQL store has its own (internal/session).
type memSessions struct {
	mu   sync.Mutex
	live map[string]bool
	err  error
}

func (m *memSessions) Create(context.Context) (string, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := "session-" + string(rune('a'+len(m.live)))
	m.live[id] = true
	return id, time.Now().Add(time.Hour), nil
}

func (m *memSessions) Valid(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live[id], m.err
}

func (m *memSessions) Revoke(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.live, id)
	return nil
}

func (m *memSessions) RevokeAll(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int64(len(m.live))
	clear(m.live)
	return n, nil
}

func TestAuthMiddleware(t *testing.T) {
	const token = "s3cret-token-0123456789"
	store := &memSessions{live: map[string]bool{}}
	a := api.NewAuth(token, store)
	session, err := a.NewSession(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(session.Value, token) || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.MaxAge <= 0 {
		t.Fatalf("cookie = %+v", session)
	}
	revoked, _ := a.NewSession(context.Background(), false)
	_ = store.Revoke(context.Background(), revoked.Value)
	tests := []struct {
		name, method, auth, ctype string
		cookie                    *http.Cookie
		storeErr                  error
		want                      int
	}{
		{"no credentials", http.MethodGet, "", "", nil, nil, http.StatusUnauthorized},
		{"wrong bearer", http.MethodGet, "Bearer nope", "", nil, nil, http.StatusUnauthorized},
		{"bearer with the token as a prefix", http.MethodGet, "Bearer " + token + "x", "", nil, nil, http.StatusUnauthorized},
		{"basic scheme", http.MethodGet, "Basic czNjcmV0", "", nil, nil, http.StatusUnauthorized},
		{"bearer", http.MethodGet, "Bearer " + token, "", nil, nil, http.StatusOK},
		{"bearer post form", http.MethodPost, "Bearer " + token, "application/x-www-form-urlencoded", nil, nil, http.StatusOK},
		{"cookie get", http.MethodGet, "", "", session, nil, http.StatusOK},
		{"cookie post json", http.MethodPost, "", "application/json; charset=utf-8", session, nil, http.StatusOK},
		{"cookie post form", http.MethodPost, "", "application/x-www-form-urlencoded", session, nil, http.StatusUnsupportedMediaType},
		{"revoked session", http.MethodGet, "", "", revoked, nil, http.StatusUnauthorized},
		{"made-up session", http.MethodGet, "", "", &http.Cookie{Name: api.CookieName, Value: "guess"}, nil, http.StatusUnauthorized},
		{"session store down", http.MethodGet, "", "", session, errors.New("down"), http.StatusServiceUnavailable},
		{"wrong bearer beats cookie", http.MethodGet, "Bearer nope", "", session, nil, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := echo.New()
			e.IPExtractor = echo.ExtractIPDirect()
			// A fresh Auth per case, so failed attempts of one case do not
			// limit the next; the session store is shared.
			a := api.NewAuth(token, store)
			e.Any("/x", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, a.Middleware)
			store.err = tt.storeErr
			defer func() { store.err = nil }()
			req := httptest.NewRequest(tt.method, "/x", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			if tt.cookie != nil {
				req.AddCookie(tt.cookie)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
}

// TestFailedBearersAreLimited: after a few wrong tokens from one address
// it gets 429, even with the right token, while another address is not
// affected.
func TestFailedBearersAreLimited(t *testing.T) {
	a := api.NewAuth("right", &memSessions{live: map[string]bool{}})
	e := echo.New()
	e.IPExtractor = echo.ExtractIPDirect()
	e.Any("/x", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, a.Middleware)
	get := func(from, tok string) int {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.RemoteAddr = from + ":5000"
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 5 {
		if code := get("203.0.113.7", "guess"); code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, code)
		}
	}
	if code := get("203.0.113.7", "guess"); code != http.StatusTooManyRequests {
		t.Fatalf("sixth guess: %d, want 429", code)
	}
	if code := get("203.0.113.7", "right"); code != http.StatusTooManyRequests {
		t.Fatalf("right token from a limited address: %d, want 429", code)
	}
	if code := get("198.51.100.4", "right"); code != http.StatusOK {
		t.Fatalf("right token from another address: %d", code)
	}
}
