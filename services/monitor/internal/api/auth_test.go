package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/b24hub/b24hub/services/monitor/internal/api"
	"github.com/labstack/echo/v4"
)

func TestAuthMiddleware(t *testing.T) {
	a := api.NewAuth("s3cret-token-0123456789")
	session := a.SessionCookie(false)
	if session.Value == "s3cret-token-0123456789" || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie = %+v", session)
	}
	tests := []struct {
		name, method, auth, ctype string
		cookie                    bool
		want                      int
	}{
		{"no credentials", http.MethodGet, "", "", false, http.StatusUnauthorized},
		{"wrong bearer", http.MethodGet, "Bearer nope", "", false, http.StatusUnauthorized},
		{"basic scheme", http.MethodGet, "Basic czNjcmV0", "", false, http.StatusUnauthorized},
		{"bearer", http.MethodGet, "Bearer s3cret-token-0123456789", "", false, http.StatusOK},
		{"bearer post form", http.MethodPost, "Bearer s3cret-token-0123456789", "application/x-www-form-urlencoded", false, http.StatusOK},
		{"cookie get", http.MethodGet, "", "", true, http.StatusOK},
		{"cookie post json", http.MethodPost, "", "application/json; charset=utf-8", true, http.StatusOK},
		{"cookie post form", http.MethodPost, "", "application/x-www-form-urlencoded", true, http.StatusUnsupportedMediaType},
		{"wrong bearer beats cookie", http.MethodGet, "Bearer nope", "", true, http.StatusUnauthorized},
	}
	e := echo.New()
	e.Any("/x", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, a.Middleware)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/x", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			if tt.cookie {
				req.AddCookie(session)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
}
