package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// monitorDo calls the monitor's API (path under /api/v1) and decodes the
// JSON answer into out.
func (c *call) monitorDo(ctx context.Context, method, path string, query url.Values, body, out any) error {
	base, err := url.Parse(strings.TrimRight(c.o.monitorURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usageErr("--monitor-url %q is not an http(s) URL", c.o.monitorURL)
	}
	u := base.JoinPath("/api/v1", path)
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fail(ExitError, "%v", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.o.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail(ExitUnavailable, "cannot reach the monitor at %s: %v — start it or set --monitor-url / B24HUB_MONITOR_URL", c.o.monitorURL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fail(ExitAuth, "the monitor refused the token (HTTP %d) — pass --token or set B24HUB_MONITOR_TOKEN to the monitor's B24HUB_MONITOR_TOKEN", resp.StatusCode)
	case resp.StatusCode == http.StatusNotFound:
		return fail(ExitError, "not found (HTTP 404): %s", apiError(raw))
	case resp.StatusCode >= 400:
		return fail(ExitError, "monitor answered HTTP %d: %s", resp.StatusCode, apiError(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fail(ExitError, "unexpected answer from the monitor: %v", err)
		}
	}
	return nil
}

func apiError(raw []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &e) == nil && (e.Error != "" || e.Message != "") {
		return e.Error + e.Message
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// str reads a string field of a decoded JSON object.
func str(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}
