package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// result is one b24ctl invocation.
type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, Env{
		Getenv: func(k string) string { return env[k] },
		Stdin:  strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
	})
	return result{code, out.String(), errOut.String()}
}

func TestHelpAndUsage(t *testing.T) {
	if r := run(t, nil, ""); r.code != ExitUsage || !strings.Contains(r.stdout, "simulate") {
		t.Errorf("no args: %+v", r)
	}
	if r := run(t, nil, "", "--help"); r.code != ExitOK {
		t.Errorf("--help: %+v", r)
	}
	if r := run(t, nil, "", "frobnicate"); r.code != ExitUsage || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("unknown: %+v", r)
	}
	for _, c := range commands {
		r := run(t, nil, "", append(strings.Fields(c.path), "--help")...)
		if r.code != ExitOK || !strings.Contains(r.stdout, "Example:\n  b24ctl "+c.path) {
			t.Errorf("%s --help: code %d\n%s", c.path, r.code, r.stdout)
		}
	}
	if r := run(t, nil, "", "topology", "apply", "--bogus"); r.code != ExitUsage {
		t.Errorf("bad flag: %+v", r)
	}
	if r := run(t, nil, "", "topology", "show", "--output", "yaml"); r.code != ExitUsage {
		t.Errorf("bad output: %+v", r)
	}
}

func TestUnreachableDependenciesNameTheFix(t *testing.T) {
	env := map[string]string{"B24HUB_NATS_URL": "nats://127.0.0.1:1", "B24HUB_MONITOR_URL": "http://127.0.0.1:1"}
	r := run(t, env, "", "topology", "show", "--timeout", "3s")
	if r.code != ExitUnavailable || !strings.Contains(r.stderr, "B24HUB_NATS_URL") {
		t.Errorf("nats down: %+v", r)
	}
	r = run(t, env, "", "events", "search", "--output", "json")
	if r.code != ExitUnavailable || !strings.Contains(r.stderr, "B24HUB_MONITOR_URL") {
		t.Errorf("monitor down: %+v", r)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc["exit_code"] != float64(ExitUnavailable) {
		t.Errorf("json error document: %q", r.stdout)
	}
}

func natsEnv(t *testing.T) (map[string]string, *nats.Conn, jetstream.JetStream) {
	srv := natstest.Start(t)
	nc, js := srv.JetStream(t)
	return map[string]string{"B24HUB_NATS_URL": srv.URL()}, nc, js
}

func TestTopology(t *testing.T) {
	env, _, js := natsEnv(t)
	if r := run(t, env, "", "topology", "show"); r.code != ExitFindings || !strings.Contains(r.stdout, "MISSING") {
		t.Fatalf("show before apply: %+v", r)
	}
	r := run(t, env, "", "topology", "apply", "--output", "json")
	if r.code != ExitOK {
		t.Fatalf("apply: %+v", r)
	}
	var out struct {
		Applied bool         `json:"applied"`
		Streams []streamView `json:"streams"`
		Buckets []string     `json:"buckets"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !out.Applied || len(out.Streams) != 5 || len(out.Buckets) != 4 {
		t.Fatalf("apply output: %v %s", err, r.stdout)
	}
	if r := run(t, env, "", "topology", "apply", "--replicas", "9"); r.code != ExitUsage {
		t.Errorf("9 replicas: %+v", r)
	}

	// Installed portals are listed from the bucket, without secrets.
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		t.Fatal(err)
	}
	if err := portals.PutInstalled(ctx, kv, portals.Installed{MemberID: "m9", Domain: "x.bitrix24.com", TokenSHA256: portals.HashToken("t"), Active: true}); err != nil {
		t.Fatal(err)
	}
	r = run(t, env, "", "portals", "list")
	if r.code != ExitOK || !strings.Contains(r.stdout, "m9") || !strings.Contains(r.stdout, "install") || strings.Contains(r.stdout, portals.HashToken("t")) {
		t.Errorf("portals list: %+v", r)
	}
}

func TestSubscriptionsDiffAndApply(t *testing.T) {
	env, nc, _ := natsEnv(t)
	if r := run(t, env, "", "subscriptions", "diff"); r.code != ExitUnavailable || !strings.Contains(r.stderr, "no subscriptions service") {
		t.Fatalf("no service: %+v", r)
	}
	// A hand-written stand-in for the service's control endpoint.
	answer := func(subject string, rep eventbus.SubscriptionsReply) {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			var req eventbus.SubscriptionsRequest
			_ = json.Unmarshal(m.Data, &req)
			if req.MemberID == "unknown" {
				b, _ := json.Marshal(eventbus.SubscriptionsReply{Error: "portal unknown is not an installed app portal"})
				_ = m.Respond(b)
				return
			}
			b, _ := json.Marshal(rep)
			_ = m.Respond(b)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	answer(eventbus.ControlSubscriptionsDiff, eventbus.SubscriptionsReply{Portals: []eventbus.SubscriptionPlan{{MemberID: "m1", Mode: "push", InSync: 3,
		Bind: []eventbus.SubscriptionBinding{{Event: "ONCRMDEALUPDATE", Handler: "https://h.example.com/bitrix24/events"}}}}})
	answer(eventbus.ControlSubscriptionsApply, eventbus.SubscriptionsReply{Portals: []eventbus.SubscriptionPlan{{MemberID: "m1", Mode: "push", InSync: 3,
		Bound: []eventbus.SubscriptionBinding{{Event: "ONCRMDEALUPDATE", Handler: "https://h.example.com/bitrix24/events"}}}}})
	r := run(t, env, "", "subscriptions", "diff")
	if r.code != ExitFindings || !strings.Contains(r.stdout, "+ ONCRMDEALUPDATE") || !strings.Contains(r.stdout, "subscriptions apply --member-id m1") {
		t.Errorf("diff: %+v", r)
	}
	if r := run(t, env, "", "subscriptions", "apply", "--output", "json"); r.code != ExitOK || !strings.Contains(r.stdout, `"bound"`) {
		t.Errorf("apply: %+v", r)
	}
	if r := run(t, env, "", "subscriptions", "diff", "--member-id", "unknown"); r.code != ExitError || !strings.Contains(r.stderr, "not an installed app portal") {
		t.Errorf("unknown portal: %+v", r)
	}
}

func TestPortalsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "portals.yaml")
	tokFile := filepath.Join(dir, "token")
	_ = os.WriteFile(tokFile, []byte("tok-1\n"), 0o600)
	env := map[string]string{"B24HUB_PORTALS_FILE": file}
	if r := run(t, env, "", "portals", "add", "--member-id", "m1", "--domain", "a.bitrix24.com", "--token-file", tokFile); r.code != ExitOK {
		t.Fatalf("add: %+v", r)
	}
	if r := run(t, env, "", "portals", "add", "--member-id", "m2", "--application-token", "generate", "--output", "json"); r.code != ExitOK || !strings.Contains(r.stdout, "application_token") {
		t.Fatalf("add generated: %+v", r)
	}
	if r := run(t, env, "", "portals", "add", "--member-id", "m1", "--application-token", "x"); r.code != ExitError || !strings.Contains(r.stderr, "rotate-token") {
		t.Errorf("duplicate add: %+v", r)
	}
	if r := run(t, env, "", "portals", "add", "--member-id", "m3"); r.code != ExitUsage {
		t.Errorf("add without token: %+v", r)
	}
	r := run(t, env, "", "portals", "list", "--no-nats", "--output", "json")
	if r.code != ExitOK || !strings.Contains(r.stdout, `"m1"`) || !strings.Contains(r.stdout, `"m2"`) || strings.Contains(r.stdout, "tok-1") {
		t.Fatalf("list: %+v", r)
	}
	if r := run(t, env, "new-token\n", "portals", "rotate-token", "--member-id", "m2", "--application-token-stdin"); r.code != ExitOK {
		t.Fatalf("rotate: %+v", r)
	}
	data, _ := os.ReadFile(file)
	ps, err := portals.ParseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.MemberID == "m2" && p.TokenSHA256 != portals.HashToken("new-token") {
			t.Error("token not rotated")
		}
	}
	if r := run(t, env, "t2", "portals", "rotate-token", "--member-id", "m1", "--application-token-stdin"); r.code != ExitOK {
		t.Fatalf("rotate via token file: %+v", r)
	}
	if b, _ := os.ReadFile(tokFile); strings.TrimSpace(string(b)) != "t2" {
		t.Errorf("token file = %q", b)
	}
	if r := run(t, env, "x", "portals", "rotate-token", "--member-id", "nope", "--application-token-stdin"); r.code != ExitError || !strings.Contains(r.stderr, "reinstall") {
		t.Errorf("rotate unknown: %+v", r)
	}
}

// monitorStub answers the monitor routes the CLI uses, behind a bearer token.
func monitorStub(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"unauthorized"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/events":
			if r.URL.Query().Get("portal") != "m1" || r.URL.Query().Get("limit") != "50" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			_, _ = io.WriteString(w, `{"events":[{"id":"e1","portal":"m1","event_type":"ONCRMDEALUPDATE","entity_id":"7","source":"push","status":"dead","received_at":"2026-09-17T10:00:00Z"}],"next_cursor":"c2"}`)
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/replay":
			var req map[string]any
			_ = json.NewDecoder(r.Body).Decode(&req)
			if req["event_id"] == "bad" {
				_, _ = io.WriteString(w, `{"replayed":[],"failed":{"bad":"not found"},"truncated":false}`)
				return
			}
			_, _ = io.WriteString(w, `{"replayed":[{"id":"r1","original_id":"e1"}],"truncated":false}`)
		case r.URL.Path == "/api/v1/portals":
			_, _ = io.WriteString(w, `{"portals":[{"portal":"m1","domain":"a.bitrix24.com","last_event_at":"2026-09-17T10:00:00Z","silence":[],"alerts":[{"rule":"silence"}]}]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"not found"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestMonitorCommands(t *testing.T) {
	srv := monitorStub(t)
	env := map[string]string{"B24HUB_MONITOR_URL": srv.URL, "B24HUB_MONITOR_TOKEN": "secret"}
	r := run(t, env, "", "events", "search", "--portal", "m1")
	if r.code != ExitOK || !strings.Contains(r.stdout, "ONCRMDEALUPDATE") || !strings.Contains(r.stdout, "--cursor c2") {
		t.Errorf("search: %+v", r)
	}
	if r := run(t, map[string]string{"B24HUB_MONITOR_URL": srv.URL}, "", "events", "search", "--portal", "m1"); r.code != ExitAuth || !strings.Contains(r.stderr, "B24HUB_MONITOR_TOKEN") {
		t.Errorf("no token: %+v", r)
	}
	if r := run(t, env, "", "replay", "event", "e1", "--output", "json"); r.code != ExitOK || !strings.Contains(r.stdout, `"r1"`) {
		t.Errorf("replay: %+v", r)
	}
	if r := run(t, env, "", "replay", "event", "bad"); r.code != ExitFindings || !strings.Contains(r.stdout, "failed bad") {
		t.Errorf("failed replay: %+v", r)
	}
	if r := run(t, env, "", "replay", "filter", "--portal", "m1", "--from", "1h"); r.code != ExitUsage || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("bulk replay without --yes: %+v", r)
	}
	if r := run(t, env, "", "replay", "dead-letters", "--consumer", "deal-sync", "--yes"); r.code != ExitOK {
		t.Errorf("dead letters: %+v", r)
	}
	if r := run(t, env, "", "portals", "health"); r.code != ExitFindings || !strings.Contains(r.stdout, "a.bitrix24.com") {
		t.Errorf("health: %+v", r)
	}
	if r := run(t, env, "", "events", "show", "missing"); r.code != ExitError || !strings.Contains(r.stderr, "404") {
		t.Errorf("show missing: %+v", r)
	}
}

// TestSimulateAgainstIngress drives a real in-process ingress, as the
// local stack runs it, and checks the events reached the raw stream.
func TestSimulateAgainstIngress(t *testing.T) {
	env, nc, js := natsEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: "m1", TokenSHA256: portals.HashToken("tok"), Active: true}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := ingress.ConfigFromEnv(func(string) string { return "" })
	cfg.Addr = "127.0.0.1:0"
	ing, err := ingress.New(cfg, ingress.Deps{NC: nc, Portals: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = ing.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	url := "http://" + ing.Addr()

	r := run(t, env, "", "simulate", "--ingress-url", url, "--portal", "m1:tok", "--events", "ONCRMDEALUPDATE,ONTASKUPDATE",
		"--rate", "100", "--duration", "5s", "--requests", "60", "--output", "json")
	if r.code != ExitOK {
		t.Fatalf("simulate: %+v", r)
	}
	var rep struct {
		Requests, OK int
		LatencyMS    struct{ P50, P99 float64 } `json:"latency_ms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Requests != 60 || rep.OK != 60 || rep.LatencyMS.P50 <= 0 {
		t.Fatalf("report: %v %s", err, r.stdout)
	}
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	if info.State.Msgs == 0 || info.State.Msgs > 60 {
		t.Errorf("stream holds %d events after 60 posts", info.State.Msgs)
	}

	// A wrong token is refused by the ingress: findings, exit 4.
	r = run(t, env, "", "simulate", "--ingress-url", url, "--portal", "m1:wrong", "--rate", "50", "--duration", "2s", "--requests", "5")
	if r.code != ExitFindings || !strings.Contains(r.stdout, "HTTP 403: 5") {
		t.Errorf("wrong token: %+v", r)
	}
	// Remote targets need --allow-remote.
	if r := run(t, env, "", "simulate", "--ingress-url", "https://ingress.example.com", "--portal", "m1:tok"); r.code != ExitUsage || !strings.Contains(r.stderr, "allow-remote") {
		t.Errorf("remote: %+v", r)
	}
	// Nothing listening: unavailable.
	if r := run(t, env, "", "simulate", "--ingress-url", "http://127.0.0.1:1", "--portal", "m1:tok", "--rate", "10", "--duration", "1s", "--requests", "2"); r.code != ExitUnavailable {
		t.Errorf("no ingress: %+v", r)
	}

	// The tail shows what the simulation published.
	r = run(t, env, "", "events", "tail", "--since", "1m", "--count", "3", "--output", "json", "--for", "5s")
	if r.code != ExitOK || strings.Count(r.stdout, `"member_id":"m1"`) != 3 {
		t.Errorf("tail: %+v", r)
	}
}
