package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/buildinfo"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// result is one b24ctl invocation.
type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	return runEnv(t, context.Background(), Env{Getenv: func(k string) string { return env[k] }, Stdin: strings.NewReader(stdin)}, args...)
}

func runEnv(t *testing.T, ctx context.Context, e Env, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	e.Stdout, e.Stderr = &out, &errOut
	code := Run(ctx, args, e)
	return result{code, out.String(), errOut.String()}
}

// leaves lists every command that does work, by path ("events tail").
func leaves() map[string]*cobra.Command {
	out := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if s.Name() == "completion" || s.Name() == "help" {
				continue
			}
			if s.HasSubCommands() {
				walk(s)
				continue
			}
			out[strings.TrimPrefix(s.CommandPath(), "b24ctl ")] = s
		}
	}
	walk((&app{env: Env{Getenv: func(string) string { return "" }}}).root())
	return out
}

func TestHelpAndUsage(t *testing.T) {
	if r := run(t, nil, ""); r.code != ExitOK || !strings.Contains(r.stdout, "simulate") {
		t.Errorf("no args: %+v", r)
	}
	if r := run(t, nil, "", "--help"); r.code != ExitOK || !strings.Contains(r.stdout, "completion") {
		t.Errorf("--help: %+v", r)
	}
	for _, args := range [][]string{{"frobnicate"}, {"events", "frobnicate"}, {"topology", "apply", "--bogus"},
		{"topology", "show", "-o", "xml"}, {"events", "show"}, {"events", "show", "a", "b"}, {"topology", "show", "extra"}} {
		if r := run(t, nil, "", args...); r.code != ExitUsage || !strings.Contains(r.stderr, "--help` for usage") {
			t.Errorf("%v: want a usage error, got %+v", args, r)
		}
	}
	for path := range leaves() {
		r := run(t, nil, "", append(strings.Fields(path), "--help")...)
		if r.code != ExitOK || !strings.Contains(r.stdout, "Examples:\n  b24ctl "+path) {
			t.Errorf("%s --help: code %d\n%s", path, r.code, r.stdout)
		}
	}
}

// TestFlagsOnlyWhereUsed: a command lists the connection flags it uses and
// no others, and -o on every command that prints a result.
func TestFlagsOnlyWhereUsed(t *testing.T) {
	natsCmds := map[string]bool{"portals list": true, "subscriptions diff": true, "subscriptions apply": true,
		"events tail": true, "topology apply": true, "topology show": true, "destinations list": true}
	monitorCmds := map[string]bool{"portals health": true, "events search": true, "events show": true,
		"replay event": true, "replay filter": true, "replay dead-letters": true, "audit": true}
	all := leaves()
	for path := range natsCmds {
		if all[path] == nil {
			t.Errorf("no command %q", path)
		}
	}
	for path, c := range all {
		t.Run(path, func(t *testing.T) {
			has := func(name string) bool { return c.Flags().Lookup(name) != nil }
			if has("nats-url") != natsCmds[path] {
				t.Errorf("--nats-url present=%v, want %v", has("nats-url"), natsCmds[path])
			}
			for _, f := range []string{"monitor-url", "token-file", "token"} {
				if has(f) != monitorCmds[path] {
					t.Errorf("--%s present=%v, want %v", f, has(f), monitorCmds[path])
				}
			}
			if has("timeout") != (natsCmds[path] || monitorCmds[path]) {
				t.Errorf("--timeout present=%v on a command that talks to neither NATS nor the monitor", has("timeout"))
			}
			if !has("output") {
				t.Error("no -o/--output")
			}
			help := run(t, nil, "", append(strings.Fields(path), "--help")...).stdout
			if strings.Contains(help, "Global Flags") || strings.Contains(help, "--token ") {
				t.Errorf("help lists global or deprecated flags:\n%s", help)
			}
		})
	}
}

func TestVersionAndCompletion(t *testing.T) {
	r := runEnv(t, context.Background(), Env{Version: "v1.2.3"}, "version")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "b24ctl v1.2.3 ") {
		t.Errorf("version: %+v", r)
	}
	r = runEnv(t, context.Background(), Env{Version: "v1.2.3"}, "version", "-o", "yaml")
	var b map[string]string
	if err := yaml.Unmarshal([]byte(r.stdout), &b); err != nil || b["version"] != "v1.2.3" || b["go_version"] == "" {
		t.Errorf("version -o yaml: %v %+v", err, r)
	}
	if r := run(t, nil, "", "version"); r.code != ExitOK || !strings.HasPrefix(r.stdout, "b24ctl "+buildinfo.Version()) {
		t.Errorf("unstamped version: %+v", r)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r := run(t, nil, "", "completion", sh); r.code != ExitOK || !strings.Contains(r.stdout, "b24ctl") {
			t.Errorf("completion %s: code %d, %d bytes", sh, r.code, len(r.stdout))
		}
	}
	// The shell asks b24ctl itself for candidates.
	r = run(t, nil, "", "__complete", "events", "search", "--status", "")
	if r.code != ExitOK || !strings.Contains(r.stdout, "dead\n") {
		t.Errorf("complete --status: %+v", r)
	}
	r = run(t, nil, "", "__complete", "replay", "")
	if !strings.Contains(r.stdout, "dead-letters") || !strings.Contains(r.stdout, "filter") {
		t.Errorf("complete replay: %+v", r)
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
	if r := run(t, env, "", "portals", "add", "--member-id", "m1", "--domain", "a.bitrix24.com", "--application-token-file", tokFile); r.code != ExitOK {
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
	// On a terminal the token is asked for without echo.
	r = runEnv(t, context.Background(), Env{Getenv: func(k string) string { return env[k] }, ReadSecret: func(string) (string, error) { return "t3\n", nil }},
		"portals", "rotate-token", "--member-id", "m1", "--application-token-stdin")
	if b, _ := os.ReadFile(tokFile); r.code != ExitOK || strings.TrimSpace(string(b)) != "t3" {
		t.Errorf("rotate from a terminal: %+v, token file %q", r, b)
	}
	if r := run(t, env, "x", "portals", "rotate-token", "--member-id", "nope", "--application-token-stdin"); r.code != ExitError || !strings.Contains(r.stderr, "reinstall") {
		t.Errorf("rotate unknown: %+v", r)
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
	r = run(t, env, "", "events", "tail", "--since", "1m", "--count", "3", "--output", "json", "--for", "60s")
	if r.code != ExitOK || strings.Count(r.stdout, `"member_id":"m1"`) != 3 {
		t.Errorf("tail: %+v", r)
	}
}

// TestPortalsAddWritesCleanFile: a new entry carries only the keys given
// (no empty strings, no `active: null`), and the operator's comments and
// other entries stay as they were.
func TestPortalsAddWritesCleanFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "portals.yaml")
	const before = `# Portals of the acme tenant; tokens live in the secret store.
portals:
  # the first portal
  - member_id: m0
    application_token: t0 # inline for the demo
    plan: enterprise
`
	if err := os.WriteFile(file, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"B24HUB_PORTALS_FILE": file}
	if r := run(t, env, "", "portals", "add", "--member-id", "m1", "--domain", "a.bitrix24.com", "--application-token", "generate"); r.code != ExitOK {
		t.Fatalf("add: %+v", r)
	}
	b, _ := os.ReadFile(file)
	got := string(b)
	for _, bad := range []string{`""`, "null", "active", "webhook", "application_token_file"} {
		if strings.Contains(got, bad) {
			t.Errorf("file has %q:\n%s", bad, got)
		}
	}
	for _, keep := range []string{"# Portals of the acme tenant", "# the first portal", "# inline for the demo", "plan: enterprise", "member_id: m1\n    application_token: ", "domain: a.bitrix24.com"} {
		if !strings.Contains(got, keep) {
			t.Errorf("file lost %q:\n%s", keep, got)
		}
	}
	if r := run(t, env, "t0-new", "portals", "rotate-token", "--member-id", "m0", "--application-token-stdin"); r.code != ExitOK {
		t.Fatalf("rotate: %+v", r)
	}
	b, _ = os.ReadFile(file)
	if !strings.Contains(string(b), "application_token: t0-new") || !strings.Contains(string(b), "# the first portal") {
		t.Errorf("after rotate:\n%s", b)
	}

	// An empty or missing file becomes a list with the one entry.
	fresh := filepath.Join(dir, "fresh.yaml")
	if r := run(t, nil, "", "portals", "add", "--portals-file", fresh, "--member-id", "m9", "--application-token-file", file); r.code != ExitOK {
		t.Fatalf("add to a new file: %+v", r)
	}
	if b, _ := os.ReadFile(fresh); string(b) != "portals:\n  - member_id: m9\n    application_token_file: "+file+"\n" {
		t.Errorf("new file:\n%s", b)
	}
	// A file that is not a portals document is refused, not overwritten.
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("- just\n- a list\n"), 0o600)
	if r := run(t, nil, "", "portals", "add", "--portals-file", bad, "--member-id", "m9", "--application-token", "generate"); r.code != ExitError || !strings.Contains(r.stderr, "mapping") {
		t.Errorf("add to a list file: %+v", r)
	}
}

func TestDestinationsList(t *testing.T) {
	env, nc, _ := natsEnv(t)
	if r := run(t, env, "", "destinations", "list"); r.code != ExitUnavailable || !strings.Contains(r.stderr, "no destinations service") {
		t.Fatalf("no service: %+v", r)
	}
	// A hand-written stand-in for the service's control endpoint.
	until := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	all := []eventbus.DestinationInfo{
		{Name: "crm-php", URL: "https://crm.example.com/b24hub", Consumer: "dest-crm-php", Stream: eventbus.StreamChanges,
			Subjects: []string{"b24.changes.deal.*.*"}, State: "delivering", Pending: 3, AckPending: 1},
		{Name: "erp", URL: "https://erp.example.com/hook", Consumer: "dest-erp", Stream: eventbus.StreamEvents,
			Subjects: []string{"b24.events.*.ONCRMDEALUPDATE"}, State: "paused", Paused: true, PausedUntil: until, Failures: 10},
	}
	sub, err := nc.Subscribe(eventbus.ControlDestinationsList, func(m *nats.Msg) {
		var req eventbus.DestinationsRequest
		_ = json.Unmarshal(m.Data, &req)
		rep := eventbus.DestinationsReply{}
		for _, d := range all {
			if req.Name == "" || req.Name == d.Name {
				rep.Destinations = append(rep.Destinations, d)
			}
		}
		if len(rep.Destinations) == 0 {
			rep.Error = "no destination " + strconv.Quote(req.Name) + " is declared"
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	r := run(t, env, "", "destinations", "list")
	if r.code != ExitFindings || !strings.Contains(r.stdout, "crm-php") || !strings.Contains(r.stdout, "b24.changes.deal.*.*") ||
		!strings.Contains(r.stdout, "paused until 03:04:05") {
		t.Errorf("list: %+v", r)
	}
	r = run(t, env, "", "destinations", "list", "--name", "crm-php", "-o", "json")
	var rep eventbus.DestinationsReply
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != ExitOK || err != nil || len(rep.Destinations) != 1 || rep.Destinations[0].Pending != 3 {
		t.Errorf("one, json: %+v (%v)", r, err)
	}
	if r := run(t, env, "", "destinations", "list", "--name", "nope"); r.code != ExitError || !strings.Contains(r.stderr, "no destination") {
		t.Errorf("unknown: %+v", r)
	}
}
