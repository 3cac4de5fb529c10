package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"google.golang.org/protobuf/proto"
)

// syncBuffer is a bytes.Buffer a running command writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// started runs b24ctl in the background with ctx; wait returns its exit
// code, failing the test if it has not ended within limit (a hang, not
// a speed check).
func started(t *testing.T, ctx context.Context, env map[string]string, args ...string) (stdout, stderr *syncBuffer, wait func(limit time.Duration) int) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, args, Env{Getenv: func(k string) string { return env[k] }, Stdout: stdout, Stderr: stderr})
	}()
	return stdout, stderr, func(limit time.Duration) int {
		t.Helper()
		select {
		case code := <-done:
			return code
		case <-time.After(limit):
			t.Fatalf("b24ctl %v still running %s after it should have stopped; stderr %q", args, limit, stderr.String())
			return -1
		}
	}
}

// TestTailRunsUntilInterrupted: a follow-mode command is not bounded by
// --timeout; it prints what arrives after that time and ends with exit 0
// on Ctrl-C.
func TestTailRunsUntilInterrupted(t *testing.T) {
	env, _, js := natsEnv(t)
	ctx := context.Background()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	tailCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	// --since: an event published after --timeout is printed even when a
	// slow machine created the tail's consumer later than that.
	stdout, stderr, wait := started(t, tailCtx, env, "events", "tail", "--timeout", "1s", "--since", "1h", "-o", "json")

	time.Sleep(2500 * time.Millisecond) // well past --timeout
	data, err := proto.Marshal(&eventsv1.Envelope{MessageId: "late-1", MemberId: "m1", Event: "ONCRMDEALUPDATE", Source: eventsv1.Source_SOURCE_PUSH})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, eventbus.RawEvent("m1", "ONCRMDEALUPDATE"), data); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(stdout.String(), `"message_id":"late-1"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the tail did not print an event published after --timeout; stdout %q stderr %q", stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	interrupt()
	if code := wait(2 * time.Minute); code != ExitOK || stderr.String() != "" {
		t.Errorf("Ctrl-C: exit %d, stderr %q; want 0 and nothing", code, stderr.String())
	}
}

// TestSimulateStopsOnInterrupt: Ctrl-C stops a long simulation at once
// and the report covers what was sent.
func TestSimulateStopsOnInterrupt(t *testing.T) {
	var hits atomic.Int64
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(ingress.Close)
	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	stdout, stderr, wait := started(t, ctx, nil, "simulate", "--ingress-url", ingress.URL, "--portal", "m1:tok",
		"--rate", "20", "--duration", "60s", "-o", "json")
	deadline := time.Now().Add(2 * time.Minute)
	for hits.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no requests reached the ingress; stderr %q", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	interrupt()
	code := wait(45 * time.Second) // --duration is 60s: it did not run to its end
	var rep struct {
		Requests, OK int
		Interrupted  bool
	}
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil || code != ExitInterrupted || !rep.Interrupted || rep.Requests < 3 || rep.OK != rep.Requests {
		t.Errorf("interrupted simulate: exit %d, %v, report %q, stderr %q", code, err, stdout.String(), stderr.String())
	}
}

// TestInterruptedCommandSaysSo: a command cut short by Ctrl-C exits 130
// with "interrupted", not with the error its cancelled request returned.
func TestInterruptedCommandSaysSo(t *testing.T) {
	f := newFakeMonitor(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := map[string]string{"B24HUB_MONITOR_URL": f.url, "B24HUB_MONITOR_TOKEN": "secret"}
	r := runEnv(t, ctx, Env{Getenv: func(k string) string { return env[k] }}, "events", "search")
	if r.code != ExitInterrupted || !strings.Contains(r.stderr, "interrupted") {
		t.Errorf("interrupted search: %+v", r)
	}
}
