package portals_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/testwait"
)

const goodFile = `portals:
  - member_id: a223c6b3710f85df22e9377d6c4f7553
    application_token: tok-1
    domain: one.bitrix24.com
    webhook_url: https://one.bitrix24.com/rest/1/abc/
  - member_id: second
    application_token: tok-2
    plan: enterprise
    active: false
`

func TestParseFile(t *testing.T) {
	ps, err := portals.ParseFile([]byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || !ps[0].Active || ps[1].Active || ps[1].Plan != "enterprise" || ps[0].WebhookURL == "" {
		t.Fatalf("parsed %+v", ps)
	}
	if ps[0].TokenSHA256 != portals.HashToken("tok-1") {
		t.Error("token not hashed")
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := map[string]string{
		"unknown key":     "portals:\n  - member_id: a\n    application_token: t\n    colour: red\n",
		"missing token":   "portals:\n  - member_id: a\n",
		"bad member id":   "portals:\n  - member_id: a.b\n    application_token: t\n",
		"duplicate":       "portals:\n  - member_id: a\n    application_token: t\n  - member_id: a\n    application_token: t\n",
		"bad webhook":     "portals:\n  - member_id: a\n    application_token: t\n    webhook_url: ftp://x\n",
		"bad plan":        "portals:\n  - member_id: a\n    application_token: t\n    plan: gold\n",
		"not yaml":        "portals: [",
		"token both ways": "portals:\n  - member_id: a\n    application_token: t\n    application_token_file: /x\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := portals.ParseFile([]byte(in)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	r := portals.NewRegistry()
	ps, _ := portals.ParseFile([]byte(goodFile))
	if err := r.Replace(portals.SourceFile, ps); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		member, token string
		ok            bool
	}{
		{"a223c6b3710f85df22e9377d6c4f7553", "tok-1", true},
		{"a223c6b3710f85df22e9377d6c4f7553", "tok-2", false},
		{"a223c6b3710f85df22e9377d6c4f7553", "", false},
		{"unknown", "tok-1", false},
		{"second", "tok-2", false}, // inactive
	}
	for _, tt := range tests {
		if _, ok := r.Authenticate(tt.member, tt.token); ok != tt.ok {
			t.Errorf("Authenticate(%s, %s) = %v, want %v", tt.member, tt.token, ok, tt.ok)
		}
	}
}

func TestFileWinsOverInstall(t *testing.T) {
	r := portals.NewRegistry()
	_ = r.Put(portals.SourceInstall, portals.Portal{MemberID: "m", TokenSHA256: portals.HashToken("install"), Active: true})
	_ = r.Put(portals.SourceFile, portals.Portal{MemberID: "m", TokenSHA256: portals.HashToken("file"), Active: true})
	if _, ok := r.Authenticate("m", "file"); !ok {
		t.Fatal("file portal not preferred")
	}
	r.Delete(portals.SourceFile, "m")
	if _, ok := r.Authenticate("m", "install"); !ok {
		t.Fatal("install portal not visible after file entry removed")
	}
}

func TestWatchFileKeepsLastGoodSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portals.yaml")
	if err := os.WriteFile(path, []byte(goodFile), 0o600); err != nil {
		t.Fatal(err)
	}
	r := portals.NewRegistry()
	if err := r.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &levels{}
	go r.WatchFile(ctx, path, 10*time.Millisecond, slog.New(logs))
	// The watcher runs: it reloads an edit. It compares with the file as
	// it found it when it started, so the file alternates between two
	// valid versions until a reload shows.
	versions := []string{strings.Replace(goodFile, "tok-2", "tok-3", 1), goodFile}
	edits := 0
	waitFor(t, func() bool {
		replaceFile(t, path, versions[edits%2])
		edits++
		return logs.count(slog.LevelInfo) > 0
	})

	replaceFile(t, path, "portals: [") // broken edit
	// Deterministic: the reload the watcher runs fails and keeps the set.
	if err := r.LoadFile(path); err == nil {
		t.Fatal("broken file loaded")
	}
	// And the watcher has had two ticks at it.
	waitFor(t, func() bool { return logs.count(slog.LevelError) >= 2 })
	if _, ok := r.Authenticate("a223c6b3710f85df22e9377d6c4f7553", "tok-1"); !ok {
		t.Fatal("broken edit dropped the portals")
	}
	replaceFile(t, path, strings.Replace(goodFile, "tok-1", "tok-new", 1))
	waitFor(t, func() bool { _, ok := r.Authenticate("a223c6b3710f85df22e9377d6c4f7553", "tok-new"); return ok })
}

// replaceFile writes data to path in one step (a rename), as an editor or a
// mounted ConfigMap does: the watcher never reads a half-written file.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatchKV(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		t.Fatal(err)
	}
	rec := portals.Installed{MemberID: "app1", TokenSHA256: portals.HashToken("t"), Active: true}
	if err := portals.PutInstalled(ctx, kv, rec); err != nil {
		t.Fatal(err)
	}
	r := portals.NewRegistry()
	if err := r.WatchKV(ctx, kv, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Authenticate("app1", "t"); !ok {
		t.Fatal("existing record not loaded before WatchKV returned")
	}
	rec.Active = false // uninstall
	if err := portals.PutInstalled(ctx, kv, rec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, ok := r.Authenticate("app1", "t"); return !ok })
	if err := portals.PutInstalled(ctx, kv, portals.Installed{MemberID: "bad.id", TokenSHA256: portals.HashToken("t")}); err == nil {
		t.Fatal("invalid record stored")
	}
}

// levels counts log records by level.
type levels struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *levels) WithGroup(string) slog.Handler            { return l }

func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[slog.Level]int{}
	}
	l.n[r.Level]++
	return nil
}

func (l *levels) count(level slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[level]
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.For(t, "the registry to follow the bucket", cond)
}
