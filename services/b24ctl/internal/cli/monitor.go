package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// monitorOptions are the flags of every command that calls the monitor API.
type monitorOptions struct {
	url       string
	tokenFile string
	// token is the deprecated --token: a token on the command line is
	// visible to every user of the machine (ps, /proc, shell history).
	token   string
	timeout time.Duration
}

// monitorFlags adds the monitor API flags to cmd.
func (a *app) monitorFlags(cmd *cobra.Command) *monitorOptions {
	o := &monitorOptions{}
	fs := cmd.Flags()
	fs.StringVar(&o.url, "monitor-url", or(a.env.Getenv("B24HUB_MONITOR_URL"), "http://127.0.0.1:8081"), "monitor base URL (env B24HUB_MONITOR_URL)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the monitor API token (env B24HUB_MONITOR_TOKEN_FILE or B24HUB_MONITOR_TOKEN; asked for on a terminal otherwise)")
	fs.StringVar(&o.token, "token", "", "the monitor API token (deprecated: visible in ps; use --token-file)")
	_ = fs.MarkDeprecated("token", "it shows the token in ps; use --token-file or B24HUB_MONITOR_TOKEN_FILE")
	timeoutFlag(cmd, &o.timeout)
	return o
}

// monitorClient calls the monitor's API (paths under /api/v1).
type monitorClient struct {
	base    *url.URL
	shown   string // the base URL as the operator gave it
	token   string
	timeout time.Duration
	hc      *http.Client
}

// monitor resolves the URL and the token of cmd's monitor flags.
func (a *app) monitor(cmd *cobra.Command, o *monitorOptions) (*monitorClient, error) {
	base, err := url.Parse(strings.TrimRight(o.url, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, usageErr("--monitor-url %q is not an http(s) URL", o.url)
	}
	tok, err := a.monitorToken(cmd, o)
	if err != nil {
		return nil, err
	}
	return &monitorClient{base: base, shown: o.url, token: tok, timeout: timeout(cmd), hc: http.DefaultClient}, nil
}

// monitorToken finds the token so that it never has to be a command-line
// argument: --token-file, then the deprecated --token (with a warning),
// then B24HUB_MONITOR_TOKEN_FILE, B24HUB_MONITOR_TOKEN, and last a prompt
// without echo when there is a terminal. No token at all is not an error
// here: the monitor's refusal names the ways to give one.
func (a *app) monitorToken(cmd *cobra.Command, o *monitorOptions) (string, error) {
	tokenFlag := cmd.Flags().Changed("token")
	switch {
	case o.tokenFile != "" && tokenFlag:
		return "", usageErr("give --token-file or --token, not both")
	case o.tokenFile != "":
		return readTokenFile("--token-file", o.tokenFile)
	case tokenFlag:
		fmt.Fprintln(a.env.Stderr, "warning: --token is deprecated: the token is visible to every user of this machine (ps, shell history); use --token-file or B24HUB_MONITOR_TOKEN_FILE")
		if strings.TrimSpace(o.token) == "" {
			return "", usageErr("--token is empty")
		}
		return strings.TrimSpace(o.token), nil
	}
	if f := a.env.Getenv("B24HUB_MONITOR_TOKEN_FILE"); f != "" {
		return readTokenFile("B24HUB_MONITOR_TOKEN_FILE", f)
	}
	if t := strings.TrimSpace(a.env.Getenv("B24HUB_MONITOR_TOKEN")); t != "" {
		return t, nil
	}
	if a.env.ReadSecret != nil {
		t, err := a.env.ReadSecret("monitor API token (input hidden): ")
		if err != nil {
			return "", fail(ExitError, "read the token: %v", err)
		}
		return strings.TrimSpace(t), nil
	}
	return "", nil
}

// readTokenFile reads a token file (a mounted secret, .data/monitor-token).
func readTokenFile(from, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fail(ExitError, "%s: %v", from, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fail(ExitError, "%s: %s is empty", from, path)
	}
	return t, nil
}

// do calls method path (under /api/v1) and decodes the JSON answer into
// out. --timeout bounds each call, so a long replay of many calls is not
// cut off by it.
func (m *monitorClient) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	u := m.base.JoinPath("/api/v1", path)
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fail(ExitError, "encode request: %v", err)
		}
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
	if m.token != "" {
		req.Header.Set("Authorization", "Bearer "+m.token)
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return fail(ExitUnavailable, "cannot reach the monitor at %s: %v — start it or set --monitor-url / B24HUB_MONITOR_URL", m.shown, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fail(ExitUnavailable, "read the monitor's answer: %v", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fail(ExitAuth, "the monitor refused the token (HTTP %d) — set B24HUB_MONITOR_TOKEN_FILE (or B24HUB_MONITOR_TOKEN) or pass --token-file with the monitor's token (local stack: .data/monitor-token)", resp.StatusCode)
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
