package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// fakeMonitor answers the monitor routes the CLI uses, behind the bearer
// token "secret", over a small ledger: events e0…e(n-1), newest first,
// and dead letters.
type fakeMonitor struct {
	mu       sync.Mutex
	events   []string
	dead     []map[string]any
	replayed []string // event ids of POST /replay, in order
	// onReplay runs after each replay request was answered.
	onReplay func(n int)
	url      string
}

func newFakeMonitor(t *testing.T, events int) *fakeMonitor {
	f := &fakeMonitor{}
	for i := range events {
		f.events = append(f.events, fmt.Sprintf("e%d", i))
	}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeMonitor) posted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.replayed...)
}

func (f *fakeMonitor) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer secret" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"unauthorized"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/events":
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit < 1 || limit > 1000 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"limit must be 1..1000"}`)
			return
		}
		from, _ := strconv.Atoi(q.Get("cursor"))
		page := map[string]any{"events": []map[string]any{}}
		var evs []map[string]any
		for i := from; i < len(f.events) && len(evs) < limit; i++ {
			evs = append(evs, map[string]any{"id": f.events[i], "portal": "m1", "event_type": "ONCRMDEALUPDATE", "entity_id": "7",
				"source": "push", "status": "dead", "received_at": "2026-09-17T10:00:00Z"})
		}
		if evs != nil {
			page["events"] = evs
		}
		if next := from + len(evs); next < len(f.events) {
			page["next_cursor"] = strconv.Itoa(next)
		}
		_ = json.NewEncoder(w).Encode(page)
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/audit":
		if _, err := time.Parse(time.RFC3339, q.Get("from")); err != nil || q.Get("grace") == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"from must be RFC 3339"}`)
			return
		}
		rep := `{"from":"2026-09-17T00:00:00Z","to":"2026-09-18T00:00:00Z","stream_first_seq":1,"stream_last_seq":3,"stream_messages":3,"ledger_events":3,` +
			`"consumers":[{"name":"deal-sync","ack_floor_seq":3,"delivered_seq":3}],"findings":[],"ok":true}`
		if len(f.events) > 3 { // a broken chain
			rep = `{"from":"2026-09-17T00:00:00Z","to":"2026-09-18T00:00:00Z","stream_last_seq":4,"stream_messages":4,"ledger_events":3,` +
				`"consumers":[{"name":"deal-sync","ack_floor_seq":3,"delivered_seq":4}],"findings":[{"event_id":"e3","stream_seq":4,` +
				`"reason":"missing_from_ledger","detail":"stream sequence 4 was never recorded in the ledger"}],"ok":false}`
		}
		_, _ = io.WriteString(w, rep)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/events/"):
		id := strings.TrimPrefix(r.URL.Path, "/api/v1/events/")
		for _, e := range f.events {
			if e == id {
				fmt.Fprintf(w, `{"event":{"id":%q,"portal":"m1","event_type":"ONCRMDEALUPDATE","status":"done"},"deliveries":[{"consumer":"deal-sync","status":"done","attempts":1}],"replays":[],"trace_id":"abc"}`, id)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":"event not found"}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/replay":
		var req struct {
			EventID     string            `json:"event_id"`
			Consumer    string            `json:"consumer"`
			Events      map[string]string `json:"events"`
			DeadLetters map[string]string `json:"dead_letters"`
			Limit       int               `json:"limit"`
			Force       bool              `json:"force"`
			DryRun      bool              `json:"dry_run"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.DryRun {
			f.plan(w, req.EventID, req.Consumer, req.Events, req.DeadLetters, req.Limit, req.Force)
			return
		}
		id := req.EventID
		if id == "" { // the CLI runs a bulk replay one event per request
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"want event_id"}`)
			return
		}
		f.replayed = append(f.replayed, id)
		switch {
		case id == "bad":
			_, _ = io.WriteString(w, `{"replayed":[],"failed":{"bad":"not replayable"},"truncated":false}`)
		case id == "gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"event not found"}`)
		default:
			fmt.Fprintf(w, `{"replayed":[{"id":"%s-r1","original_id":%q,"consumer":%q}],"truncated":false}`, id, id, req.Consumer)
		}
		w.(http.Flusher).Flush()
		if f.onReplay != nil {
			f.onReplay(len(f.replayed))
		}
	case r.URL.Path == "/api/v1/portals":
		_, _ = io.WriteString(w, `{"portals":[{"portal":"m1","domain":"a.bitrix24.com","last_event_at":"2026-09-17T10:00:00Z","silence":[],"alerts":[{"rule":"silence"}]}]}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":"not found"}`)
	}
}

// replayMax is the fake monitor's B24HUB_MONITOR_REPLAY_MAX.
const replayMax = 20

// plan answers a dry run the way the monitor does: the events or dead
// letters the request would replay, each with its consumer.
func (f *fakeMonitor) plan(w http.ResponseWriter, eventID, consumer string, events, dead map[string]string, limit int, force bool) {
	if limit <= 0 || limit > replayMax {
		limit = replayMax
	}
	p := replayPlan{DryRun: true, EventIDs: []string{}, Targets: []replayTarget{}, Limit: limit}
	add := func(id, consumer string) {
		p.EventIDs, p.Targets = append(p.EventIDs, id), append(p.Targets, replayTarget{EventID: id, Consumer: consumer})
		p.WouldReplay++
	}
	switch {
	case eventID != "":
		if !slices.Contains(f.events, eventID) {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"event not found"}`)
			return
		}
		p.Limit = 1
		add(eventID, consumer)
	case events != nil:
		if _, err := time.Parse(time.RFC3339, events["from"]); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ids := f.events
		if len(ids) > limit {
			ids, p.Truncated = ids[:limit], true
		}
		for _, id := range ids {
			add(id, events["consumer"])
		}
	default:
		rows := f.dead
		if len(rows) > limit {
			rows, p.Truncated = rows[:limit], true
		}
		for _, d := range rows {
			id, _ := d["event_id"].(string)
			rep, _ := d["replay"].(map[string]any)
			if st, _ := rep["status"].(string); !force && rep != nil && st != "dead" && st != "error" {
				p.Skipped = append(p.Skipped, id)
				continue
			}
			add(id, d["consumer"].(string))
		}
	}
	_ = json.NewEncoder(w).Encode(p)
}

func TestMonitorCommands(t *testing.T) {
	f := newFakeMonitor(t, 3)
	env := map[string]string{"B24HUB_MONITOR_URL": f.url, "B24HUB_MONITOR_TOKEN": "secret"}
	r := run(t, env, "", "events", "search", "--portal", "m1", "--limit", "2")
	if r.code != ExitOK || !strings.Contains(r.stdout, "ONCRMDEALUPDATE") || !strings.Contains(r.stdout, "--cursor 2") {
		t.Errorf("search: %+v", r)
	}
	r = run(t, env, "", "events", "search", "-o", "yaml")
	var page struct {
		Events []map[string]string `yaml:"events"`
	}
	if err := yaml.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Events) != 3 || page.Events[0]["received_at"] != "2026-09-17T10:00:00Z" {
		t.Errorf("search -o yaml: %v %+v", err, r)
	}
	if r := run(t, env, "", "events", "show", "e1"); r.code != ExitOK || !strings.Contains(r.stdout, "deal-sync") || !strings.Contains(r.stdout, "trace:") {
		t.Errorf("show: %+v", r)
	}
	if r := run(t, env, "", "events", "show", "e1", "-o", "json"); r.code != ExitOK || !json.Valid([]byte(r.stdout)) {
		t.Errorf("show -o json: %+v", r)
	}
	if r := run(t, env, "", "events", "show", "missing"); r.code != ExitError || !strings.Contains(r.stderr, "404") {
		t.Errorf("show missing: %+v", r)
	}
	if r := run(t, env, "", "portals", "health"); r.code != ExitFindings || !strings.Contains(r.stdout, "a.bitrix24.com") {
		t.Errorf("health: %+v", r)
	}
	r = run(t, env, "", "events", "show", "missing", "-o", "json")
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc["exit_code"] != float64(ExitError) {
		t.Errorf("json error document: %q", r.stdout)
	}
}

// TestAudit: a clean audit exits 0 and says so; findings exit 4 and are
// listed with their reason, in every output format.
func TestAudit(t *testing.T) {
	clean := newFakeMonitor(t, 3)
	env := map[string]string{"B24HUB_MONITOR_URL": clean.url, "B24HUB_MONITOR_TOKEN": "secret"}
	if r := run(t, env, "", "audit", "--from", "24h"); r.code != ExitOK || !strings.Contains(r.stdout, "nothing missing") || !strings.Contains(r.stdout, "deal-sync") {
		t.Errorf("clean audit: %+v", r)
	}
	broken := newFakeMonitor(t, 4)
	env["B24HUB_MONITOR_URL"] = broken.url
	r := run(t, env, "", "audit")
	if r.code != ExitFindings || !strings.Contains(r.stdout, "missing_from_ledger") || !strings.Contains(r.stdout, "e3") {
		t.Errorf("broken audit: %+v", r)
	}
	r = run(t, env, "", "audit", "-o", "json")
	var rep auditReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != ExitFindings || len(rep.Findings) != 1 || rep.Findings[0].Reason != "missing_from_ledger" {
		t.Errorf("audit -o json: %v %+v", err, r)
	}
	for _, args := range [][]string{{"audit", "--from", "yesterday"}, {"audit", "--grace", "0s"}, {"audit", "extra"}} {
		if r := run(t, env, "", args...); r.code != ExitUsage {
			t.Errorf("%v: %+v, want usage error", args, r)
		}
	}
}

// TestMonitorToken: the token reaches the monitor without being an
// argument, from each source in order; --token still works, with a
// warning.
func TestMonitorToken(t *testing.T) {
	f := newFakeMonitor(t, 1)
	dir := t.TempDir()
	good, wrong, empty := filepath.Join(dir, "good"), filepath.Join(dir, "wrong"), filepath.Join(dir, "empty")
	for p, s := range map[string]string{good: "secret\n", wrong: "nope", empty: "\n"} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	prompted := 0
	prompt := func(string) (string, error) { prompted++; return "secret", nil }
	for _, tc := range []struct {
		name     string
		env      map[string]string
		prompt   bool
		args     []string
		code     int
		stderr   string
		prompted int
	}{
		{name: "token file flag", args: []string{"--token-file", good}, code: ExitOK},
		{name: "flag beats environment", env: map[string]string{"B24HUB_MONITOR_TOKEN": "nope"}, args: []string{"--token-file", good}, code: ExitOK},
		{name: "environment file", env: map[string]string{"B24HUB_MONITOR_TOKEN_FILE": good}, code: ExitOK},
		{name: "environment file beats environment", env: map[string]string{"B24HUB_MONITOR_TOKEN_FILE": good, "B24HUB_MONITOR_TOKEN": "nope"}, code: ExitOK},
		{name: "environment", env: map[string]string{"B24HUB_MONITOR_TOKEN": "secret"}, code: ExitOK},
		{name: "prompt on a terminal", prompt: true, code: ExitOK, prompted: 1},
		{name: "no prompt when given", prompt: true, env: map[string]string{"B24HUB_MONITOR_TOKEN": "secret"}, code: ExitOK},
		{name: "deprecated flag warns", args: []string{"--token", "secret"}, code: ExitOK, stderr: "deprecated"},
		{name: "both flags", args: []string{"--token", "secret", "--token-file", good}, code: ExitUsage, stderr: "not both"},
		{name: "empty file", args: []string{"--token-file", empty}, code: ExitError, stderr: "is empty"},
		{name: "missing file", args: []string{"--token-file", filepath.Join(dir, "none")}, code: ExitError, stderr: "no such file"},
		{name: "wrong token", args: []string{"--token-file", wrong}, code: ExitAuth, stderr: "--token-file"},
		{name: "none, no terminal", code: ExitAuth, stderr: "B24HUB_MONITOR_TOKEN_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prompted = 0
			env := map[string]string{"B24HUB_MONITOR_URL": f.url}
			for k, v := range tc.env {
				env[k] = v
			}
			e := Env{Getenv: func(k string) string { return env[k] }}
			if tc.prompt {
				e.ReadSecret = prompt
			}
			r := runEnv(t, context.Background(), e, append([]string{"events", "show", "e0"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) || prompted != tc.prompted {
				t.Errorf("code %d (want %d), prompted %d (want %d), stderr %q (want %q)", r.code, tc.code, prompted, tc.prompted, r.stderr, tc.stderr)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	f := newFakeMonitor(t, 7)
	env := map[string]string{"B24HUB_MONITOR_URL": f.url, "B24HUB_MONITOR_TOKEN": "secret"}
	if r := run(t, env, "", "replay", "event", "e1", "--consumer", "deal-sync", "-o", "json"); r.code != ExitOK || !strings.Contains(r.stdout, `"e1-r1"`) {
		t.Errorf("replay event: %+v", r)
	}
	if r := run(t, env, "", "replay", "event", "bad"); r.code != ExitFindings || !strings.Contains(r.stdout, "failed bad") {
		t.Errorf("failed replay: %+v", r)
	}
	if r := run(t, env, "", "replay", "event", "e2", "--dry-run"); r.code != ExitOK || !strings.Contains(r.stdout, "would replay 1") {
		t.Errorf("replay event --dry-run: %+v", r)
	}
	if r := run(t, env, "", "replay", "event", "nope", "--dry-run"); r.code != ExitError {
		t.Errorf("dry run of an unknown event: %+v", r)
	}
	if got := f.posted(); len(got) != 2 {
		t.Fatalf("posted %v, want the two real replays only", got)
	}

	// Bulk: --yes or --dry-run, counted across pages.
	if r := run(t, env, "", "replay", "filter", "--portal", "m1", "--from", "1h"); r.code != ExitUsage || !strings.Contains(r.stderr, "--dry-run") {
		t.Errorf("bulk replay without --yes: %+v", r)
	}
	if r := run(t, env, "", "replay", "filter", "--portal", "m1", "--yes"); r.code != ExitUsage || !strings.Contains(r.stderr, "--from") {
		t.Errorf("bulk replay without --from: %+v", r)
	}
	for _, tc := range []struct {
		limit     string
		count     int
		truncated bool
	}{{"100", 7, false}, {"7", 7, false}, {"5", 5, true}} {
		r := run(t, env, "", "replay", "filter", "--from", "1h", "--limit", tc.limit, "--dry-run", "-o", "json")
		var plan replayPlan
		if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || r.code != ExitOK || !plan.DryRun || plan.WouldReplay != tc.count || plan.Truncated != tc.truncated {
			t.Errorf("--limit %s --dry-run: %v %+v", tc.limit, err, r)
		}
	}
	if r := run(t, env, "", "replay", "filter", "--from", "1h", "--limit", "5", "--dry-run"); !strings.Contains(r.stdout, "would replay 5 event(s)\nmore matched than --limit") {
		t.Errorf("dry run text: %+v", r)
	}
	if got := f.posted(); len(got) != 2 {
		t.Fatalf("a dry run replayed: %v", got)
	}
	var stderr strings.Builder
	r := runEnv(t, context.Background(), Env{Getenv: func(k string) string { return env[k] }, Progress: true}, "replay", "filter", "--from", "1h", "--yes")
	stderr.WriteString(r.stderr)
	if r.code != ExitOK || !strings.Contains(r.stdout, "replayed 7, skipped 0, failed 0") || !strings.Contains(stderr.String(), "100% 7/7") {
		t.Errorf("replay filter --yes: %+v", r)
	}
	if got := f.posted(); len(got) != 9 || got[2] != "e0" || got[8] != "e6" {
		t.Errorf("posted %v", got)
	}

	// Dead letters: the ones replayed already are skipped unless --force.
	f.mu.Lock()
	f.dead = []map[string]any{
		{"event_id": "e0", "consumer": "deal-sync", "status": "dead"},
		{"event_id": "e1", "consumer": "deal-sync", "status": "dead", "replay": map[string]any{"status": "pending"}},
		{"event_id": "gone", "consumer": "tasks", "status": "dead", "replay": map[string]any{"status": "dead"}},
	}
	f.mu.Unlock()
	if r := run(t, env, "", "replay", "dead-letters", "--consumer", "deal-sync"); r.code != ExitUsage {
		t.Errorf("dead letters without --yes: %+v", r)
	}
	if r := run(t, env, "", "replay", "dead-letters", "--dry-run"); r.code != ExitOK || !strings.Contains(r.stdout, "would replay 2 event(s), skip 1") {
		t.Errorf("dead letters --dry-run: %+v", r)
	}
	if r := run(t, env, "", "replay", "dead-letters", "--dry-run", "--force", "--limit", "2", "-o", "yaml"); !strings.Contains(r.stdout, "would_replay: 2\n") || !strings.Contains(r.stdout, "truncated: true") {
		t.Errorf("dead letters --force --limit 2: %+v", r)
	}
	r = run(t, env, "", "replay", "dead-letters", "--yes")
	if r.code != ExitFindings || !strings.Contains(r.stdout, "replayed 1, skipped 1, failed 1") || !strings.Contains(r.stdout, "failed gone") {
		t.Errorf("dead letters --yes: %+v", r)
	}
	if got := f.posted(); len(got) != 11 || got[9] != "e0" || got[10] != "gone" {
		t.Errorf("posted %v", got)
	}
}

// TestReplayStopsOnInterrupt: Ctrl-C during a bulk replay stops it
// between two requests and says how far it got.
func TestReplayStopsOnInterrupt(t *testing.T) {
	f := newFakeMonitor(t, 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.onReplay = func(n int) {
		if n == 3 {
			cancel()
		}
	}
	env := map[string]string{"B24HUB_MONITOR_URL": f.url, "B24HUB_MONITOR_TOKEN": "secret"}
	r := runEnv(t, ctx, Env{Getenv: func(k string) string { return env[k] }}, "replay", "filter", "--from", "1h", "--yes", "-o", "json")
	var res replayResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != ExitInterrupted || !res.Interrupted || !strings.Contains(r.stderr, "interrupted after") {
		t.Errorf("interrupted replay: %v %+v", err, r)
	}
	if n := len(f.posted()); n < 3 || n > 4 {
		t.Errorf("%d replays requested after Ctrl-C at the third", n)
	}
}

// TestReplayCappedByMonitor: a --limit above the monitor's
// B24HUB_MONITOR_REPLAY_MAX says so instead of pretending.
func TestReplayCappedByMonitor(t *testing.T) {
	f := newFakeMonitor(t, replayMax+5)
	env := map[string]string{"B24HUB_MONITOR_URL": f.url, "B24HUB_MONITOR_TOKEN": "secret"}
	r := run(t, env, "", "replay", "filter", "--from", "1h", "--limit", "100", "--dry-run")
	if r.code != ExitOK || !strings.Contains(r.stdout, fmt.Sprintf("would replay %d event(s)\nmore matched than the monitor replays at once (%d", replayMax, replayMax)) {
		t.Errorf("capped dry run: %+v", r)
	}
}
