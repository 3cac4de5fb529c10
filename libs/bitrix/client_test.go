package bitrix

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/b24hub/b24hub/libs/bitrix/allowlist"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// answer is one scripted HTTP response.
type answer struct {
	status int
	body   string
	header map[string]string
}

// script serves answers in order (repeating the last) and records requests.
type script struct {
	mu      sync.Mutex
	answers []answer
	reqs    []recorded
}

type recorded struct {
	method, path, body string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	i := min(len(s.reqs), len(s.answers)-1)
	s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, string(b)})
	a := s.answers[i]
	s.mu.Unlock()
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	if a.status == 0 {
		a.status = 200
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func newScripted(t *testing.T, answers ...answer) (*Client, *script, *VirtualClock, *httptest.Server) {
	t.Helper()
	s := &script{answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	clock := NewVirtualClock()
	c, err := New(Config{WebhookURL: srv.URL + "/rest/1/secret/", MemberID: "m1"}, WithClock(clock), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	return c, s, clock, srv
}

const (
	okDeal     = `{"result":{"ID":"7","TITLE":"t"}}`
	qle        = `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`
	overload   = `{"error":"OVERLOAD_LIMIT","error_description":"REST API is blocked due to overload"}`
	serverHTML = `<html><body>502 Bad Gateway</body></html>`
)

func TestRetryRules(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		answers   []answer
		wantErr   Kind // 0: success
		wantCalls int
		ambiguous bool
	}{
		{"query limit is retried until success", "crm.deal.get",
			[]answer{{503, qle, nil}, {503, qle, nil}, {200, okDeal, nil}}, 0, 3, false},
		{"query limit retried for writes too", "crm.deal.update",
			[]answer{{503, qle, nil}, {200, `{"result":true}`, nil}}, 0, 2, false},
		{"overload is never retried", "crm.deal.get",
			[]answer{{503, overload, nil}, {200, okDeal, nil}}, KindOverload, 1, false},
		{"read retried after an HTML page", "crm.deal.get",
			[]answer{{502, serverHTML, nil}, {200, okDeal, nil}}, 0, 2, false},
		{"read gives up after MaxRetries", "crm.deal.get",
			[]answer{{500, `{"error":"INTERNAL_SERVER_ERROR"}`, nil}}, KindTransient, 4, false},
		{"write not repeated after an ambiguous failure", "crm.deal.update",
			[]answer{{500, `{"error":"INTERNAL_SERVER_ERROR"}`, nil}, {200, `{"result":true}`, nil}}, KindTransient, 1, true},
		{"permanent error is returned at once", "crm.deal.update",
			[]answer{{400, `{"error":"","error_description":"Parameter 'fields' must be array."}`, nil}}, KindPermanent, 1, false},
		{"webhook auth error is not refreshed", "crm.deal.get",
			[]answer{{401, `{"error":"NO_AUTH_FOUND","error_description":"Wrong authorization data"}`, nil}}, KindAuth, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s, _, _ := newScripted(t, tt.answers...)
			_, err := c.Do(context.Background(), tt.method, map[string]any{"id": 7})
			if tt.wantErr == 0 && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantErr != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Kind() != tt.wantErr {
					t.Fatalf("got %v, want kind %v", err, tt.wantErr)
				}
				if e.Method != tt.method || e.Portal != "m1" || e.Ambiguous != tt.ambiguous {
					t.Fatalf("error fields: %+v", e)
				}
				if strings.Contains(e.Error(), "secret") {
					t.Fatalf("error leaks the webhook code: %v", e)
				}
			}
			if s.count() != tt.wantCalls {
				t.Fatalf("%d HTTP calls, want %d", s.count(), tt.wantCalls)
			}
		})
	}
}

func TestQueryLimitGivesUp(t *testing.T) {
	c, s, clock, _ := newScripted(t, answer{503, qle, nil})
	start := clock.Now()
	_, err := c.Do(context.Background(), "crm.deal.get", nil)
	if !errors.Is(err, KindQueryLimit) {
		t.Fatalf("got %v", err)
	}
	// backoff stops before the next delay would pass QueryLimitMaxElapsed.
	if elapsed := clock.Now().Sub(start); elapsed < time.Minute || elapsed > 2*time.Minute {
		t.Fatalf("gave up after %v of virtual time", elapsed)
	}
	if s.count() < 5 {
		t.Fatalf("only %d attempts", s.count())
	}
}

func TestOperationLimitPausesMethod(t *testing.T) {
	c, s, clock, _ := newScripted(t,
		answer{429, `{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit.","time":{"operating_reset_at":1789646720}}`, nil},
		answer{200, okDeal, nil})
	ctx := context.Background()
	_, err := c.Do(ctx, "crm.deal.update", nil)
	var e *Error
	if !errors.As(err, &e) || e.Kind() != KindOperationLimit || e.ResetAt.Unix() != 1789646720 {
		t.Fatalf("got %v", err)
	}
	// Paused locally: no request is sent for the same method.
	if _, err := c.Do(ctx, "crm.deal.update", nil); !errors.Is(err, KindOperationLimit) || s.count() != 1 {
		t.Fatalf("second call: %v after %d requests", err, s.count())
	}
	if RetryAfter(err, clock.Now()) <= 0 {
		t.Fatal("no RetryAfter")
	}
	// Other methods keep working (§4.6).
	if _, err := c.Do(ctx, "crm.deal.get", nil); err != nil {
		t.Fatalf("other method: %v", err)
	}
	// After the reset the method works again.
	clock.Advance(time.Unix(1789646721, 0).Sub(clock.Now()))
	if _, err := c.Do(ctx, "crm.deal.update", nil); err != nil {
		t.Fatalf("after reset: %v", err)
	}
}

func TestRedirectRePOSTs(t *testing.T) {
	var renamed []string
	newSrv := httptest.NewServer(&script{answers: []answer{{200, okDeal, nil}}})
	defer newSrv.Close()
	var reqs []recorded
	var mu sync.Mutex
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, recorded{r.Method, r.URL.Path, string(b)})
		mu.Unlock()
		http.Redirect(w, r, newSrv.URL+r.URL.Path, http.StatusFound)
	}))
	defer old.Close()
	// The new location is an on-premise host reached over plain http, so
	// it must be on the allow-list.
	hosts, _ := allowlist.New([]string{strings.TrimPrefix(newSrv.URL, "http://")})
	c, err := New(Config{WebhookURL: old.URL + "/rest/1/code/", MemberID: "m1"}, WithClock(NewVirtualClock()), WithLogger(quietLogger()),
		WithRenameHook(func(_ context.Context, o, n string) { renamed = append(renamed, o+" -> "+n) }), WithAllowedHosts(hosts))
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.GetDeal(context.Background(), 7)
	if err != nil || d.ID != 7 {
		t.Fatalf("GetDeal: %v %v", d, err)
	}
	got := newSrv.Config.Handler.(*script).reqs
	if len(got) != 1 || got[0].method != http.MethodPost || got[0].path != "/rest/1/code/crm.deal.get" || !strings.Contains(got[0].body, `"id":7`) {
		t.Fatalf("re-POST not faithful: %+v", got)
	}
	if len(renamed) != 1 {
		t.Fatalf("rename hook: %v", renamed)
	}
	// Later calls go straight to the new domain.
	if _, err := c.GetDeal(context.Background(), 7); err != nil || len(reqs) != 1 {
		t.Fatalf("second call went to the old domain (%d) or failed: %v", len(reqs), err)
	}
	dom, _ := c.Domain(context.Background())
	if !strings.Contains(newSrv.URL, dom) {
		t.Fatalf("Domain() = %s", dom)
	}
}

// A portal's redirect may not move its calls, and the credentials they
// carry, to a host off the allow-list or to plain http; the new endpoint is
// not saved.
func TestRedirectRefusedOffTheAllowList(t *testing.T) {
	other := httptest.NewServer(&script{answers: []answer{{200, okDeal, nil}}})
	defer other.Close()
	otherHost := strings.TrimPrefix(other.URL, "http://")
	tests := []struct {
		name     string
		location string
		allowed  []string
	}{
		{"another host, not configured", other.URL + "/rest/1/code/crm.deal.get", nil},
		{"a cloud domain over http", "http://evil.bitrix24.com/rest/1/code/crm.deal.get", nil},
		{"a look-alike domain", "https://acme.bitrix24.com.evil.example/rest/1/code/crm.deal.get", nil},
		{"a link-local address", "http://169.254.169.254/rest/1/code/crm.deal.get", nil},
		{"another scheme", "ftp://" + otherHost + "/rest/1/code/crm.deal.get", []string{otherHost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var renamed []string
			old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", tt.location)
				w.WriteHeader(http.StatusFound)
			}))
			defer old.Close()
			hosts, _ := allowlist.New(tt.allowed)
			c, err := New(Config{WebhookURL: old.URL + "/rest/1/code/", MemberID: "m1"}, WithClock(NewVirtualClock()), WithLogger(quietLogger()),
				WithRenameHook(func(_ context.Context, o, n string) { renamed = append(renamed, o+" -> "+n) }), WithAllowedHosts(hosts))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetDeal(context.Background(), 7)
			if !errors.Is(err, KindPermanent) || !strings.Contains(err.Error(), "redirect refused") {
				t.Fatalf("GetDeal = %v, want a permanent redirect-refused error", err)
			}
			if len(renamed) != 0 || len(other.Config.Handler.(*script).reqs) != 0 {
				t.Fatalf("followed: renamed %v, %d requests to the other host", renamed, len(other.Config.Handler.(*script).reqs))
			}
			if dom, _ := c.Domain(context.Background()); !strings.Contains(old.URL, dom) {
				t.Fatalf("endpoint saved: Domain() = %s", dom)
			}
		})
	}
}

func TestRedirectAwayFromRESTIsPermanent(t *testing.T) {
	c, s, _, _ := newScripted(t, answer{302, "", map[string]string{"Location": "/bitrix/coupon_activation.php"}})
	_, err := c.Do(context.Background(), "crm.deal.get", nil)
	if !errors.Is(err, KindPermanent) || s.count() != 1 {
		t.Fatalf("got %v after %d requests", err, s.count())
	}
}

func TestBatchAgainstScript(t *testing.T) {
	c, s, _, _ := newScripted(t, answer{200, `{"result":{"result":{"a":{"ID":"1"}},"result_error":{"b":{"error":"","error_description":"Not found"}},"result_total":[],"result_next":[],"result_time":[]}}`, nil})
	res, err := c.Batch(context.Background(), false,
		BatchCommand{Key: "a", Method: "crm.deal.get", Params: map[string]any{"id": 1}},
		BatchCommand{Key: "b", Method: "crm.deal.get", Params: map[string]any{"id": 2}})
	if err != nil {
		t.Fatal(err)
	}
	var d Deal
	if err := res.Decode("a", &d); err != nil || d.ID != 1 {
		t.Fatalf("a: %v %v", d, err)
	}
	if err := res.Decode("b", &d); !errors.Is(err, KindNotFound) {
		t.Fatalf("b: %v", err)
	}
	var body map[string]any
	_ = json.Unmarshal([]byte(s.reqs[0].body), &body)
	if s.reqs[0].path != "/rest/1/secret/batch" || body["halt"] != float64(0) {
		t.Fatalf("request %+v", s.reqs[0])
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"webhook", Config{WebhookURL: "https://x.bitrix24.com/rest/1/abc/"}, true},
		{"neither", Config{}, false},
		{"both", Config{WebhookURL: "https://x/rest/1/a/", OAuth: &OAuthConfig{}}, false},
		{"no rest path", Config{WebhookURL: "https://x.bitrix24.com/1/abc/"}, false},
		{"oauth missing store", Config{OAuth: &OAuthConfig{ClientID: "a", ClientSecret: "b", MemberID: "m"}}, false},
		{"bad rate", Config{WebhookURL: "https://x/rest/1/a/", Rate: Rate{PerSecond: -1, Burst: 1}}, false},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
	err := (&Config{WebhookURL: "ftp://x/rest/1/topsecret/"}).Validate()
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("validate leaks or passes: %v", err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// brokenStore fails like an unreachable NATS KV.
type brokenStore struct{}

func (brokenStore) Load(context.Context, string) (Token, uint64, error) {
	return Token{}, 0, errors.New("nats: no servers available")
}

func (brokenStore) CompareAndSwap(context.Context, string, uint64, Token) (uint64, error) {
	return 0, errors.New("nats: no servers available")
}

func TestWriteThatWasNeverSentIsNotAmbiguous(t *testing.T) {
	c, err := New(Config{OAuth: &OAuthConfig{ClientID: "a", ClientSecret: "b", MemberID: "m", Store: brokenStore{}}},
		WithClock(NewVirtualClock()), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(context.Background(), "crm.deal.update", nil)
	var e *Error
	if !errors.As(err, &e) || e.Kind() != KindTransient || e.Ambiguous || !Retryable(err) {
		t.Fatalf("got %v (ambiguous=%v)", err, e != nil && e.Ambiguous)
	}
}

func TestCallEmptyArrayIsNotFound(t *testing.T) {
	c, _, _, _ := newScripted(t, answer{200, `{"result":[]}`, nil})
	var out struct{ ID ID }
	if err := c.Call(context.Background(), "tasks.task.get", nil, &out); !errors.Is(err, KindNotFound) {
		t.Fatalf("got %v", err)
	}
}
