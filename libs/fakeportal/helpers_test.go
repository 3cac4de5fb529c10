package fakeportal_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/b24event/fixtures"
	"github.com/b24hub/b24hub/libs/fakeportal"
)

// fixture reads a documented body (libs/b24event/fixtures) without its
// "# source:" line.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fixtures.Body(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newPortal(t *testing.T, cfg fakeportal.Config) *fakeportal.Portal {
	t.Helper()
	p, err := fakeportal.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// sink is an event handler that records pushes.
type sink struct {
	mu     sync.Mutex
	bodies [][]byte
	types  []string
	srv    *httptest.Server
}

func newSink(t *testing.T) *sink {
	s := &sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, b)
		s.types = append(s.types, r.Header.Get("Content-Type"))
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the handler URL (127.0.0.1 has the dot event.bind requires).
func (s *sink) URL() string { return s.srv.URL + "/hook" }

func (s *sink) events(t *testing.T) []*b24event.Body {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*b24event.Body, len(s.bodies))
	for i, b := range s.bodies {
		body, err := b24event.Decode(s.types[i], b, b24event.Limits{})
		if err != nil {
			t.Fatalf("push %d does not decode: %v\n%s", i, err, b)
		}
		out[i] = body
	}
	return out
}

func drain(t *testing.T, p *fakeportal.Portal) {
	t.Helper()
	ctx, cancel := contextWithTimeout(2 * time.Minute)
	defer cancel()
	if err := p.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

// call makes a raw REST call with a JSON body and returns status and the
// decoded envelope.
func call(t *testing.T, p *fakeportal.Portal, path string, params any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(params)
	resp, err := p.Client().Post(p.URL()+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env map[string]any
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s: non-JSON answer %d: %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, env
}

func keys(fields []b24event.Field, prefix string) []string {
	var out []string
	for _, f := range fields {
		if strings.HasPrefix(f.Key, prefix) {
			out = append(out, f.Key)
		}
	}
	return out
}

// isSubsequence reports whether sub appears in seq in order.
func isSubsequence(sub, seq []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}

// topLevel returns the distinct top-level keys in order of first use.
func topLevel(fields []b24event.Field) []string {
	var out []string
	for _, f := range fields {
		k, _, _ := strings.Cut(f.Key, "[")
		if len(out) == 0 || out[len(out)-1] != k {
			out = append(out, k)
		}
	}
	return out
}
