package ingress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/portals"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/b24hub/b24hub/services/ingress/internal/onprem"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

const (
	onpremID     = "crm-main"
	onpremSecret = "0123456789abcdef0123456789abcdef-e2e"
)

// forwarder runs the PHP driver of the b24hub.forwarder module
// (onprem/bitrix/tests/e2e/forwarder.php) on the stand-in kernel; each call
// is one PHP process, like one request of the installation.
type forwarder struct {
	t      *testing.T
	php    string
	script string
	db     string
}

func newForwarder(t *testing.T) *forwarder {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("php not installed (.ci/run installs php-cli): %v", err)
		}
		t.Skipf("php not installed: %v", err)
	}
	script, err := filepath.Abs("../../onprem/bitrix/tests/e2e/forwarder.php")
	if err != nil {
		t.Fatal(err)
	}
	return &forwarder{t: t, php: php, script: script, db: filepath.Join(t.TempDir(), "bitrix.sqlite")}
}

func (f *forwarder) run(stdin []byte, args ...string) []byte {
	f.t.Helper()
	cmd := exec.Command(f.php, append([]string{f.script}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		f.t.Fatalf("php %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return bytes.TrimSpace(out)
}

func (f *forwarder) json(v any, args ...string) {
	f.t.Helper()
	out := f.run(nil, append([]string{f.db}, args...)...)
	if err := json.Unmarshal(out, v); err != nil {
		f.t.Fatalf("php %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

type spool struct {
	Size int      `json:"size"`
	IDs  []string `json:"ids"`
}

type shipResult struct {
	Waiting       int    `json:"waiting"`
	LastError     string `json:"last_error"`
	LastSuccessAt int64  `json:"last_success_at"`
}

func (f *forwarder) spool() spool {
	var s spool
	f.json(&s, "spool")
	return s
}

func (f *forwarder) ship() shipResult {
	var r shipResult
	f.json(&r, "ship")
	return r
}

func (f *forwarder) fire(first, n int) {
	var s spool
	f.json(&s, "fire", strconv.Itoa(first), strconv.Itoa(n))
}

// sign signs body with the module's PHP code, so the Go side checks a
// signature it did not compute itself.
func (f *forwarder) sign(secret string, ts int64, body []byte) string {
	return string(f.run(body, "-", "sign", secret, strconv.FormatInt(ts, 10)))
}

// onpremIngress runs an ingress on addr until stop is called.
type onpremIngress struct {
	addr string
	stop func()
}

func startOnpremIngress(t *testing.T, nc *nats.Conn, reg *portals.Registry, addr string) *onpremIngress {
	t.Helper()
	cfg, err := ingress.ConfigFromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = addr
	cfg.PublishTimeout = time.Second
	cfg.ShutdownTimeout = time.Second
	svc, err := ingress.New(cfg, ingress.Deps{NC: nc, Portals: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	in := &onpremIngress{addr: svc.Addr()}
	stopped := false
	in.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingress Run: %v", err)
		}
	}
	t.Cleanup(in.stop)
	return in
}

// storedOnprem returns the on-premise events in the raw stream, in stream
// order, checking on each what every consumer relies on.
func storedOnprem(t *testing.T, js jetstream.JetStream) []*eventsv1.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, eventbus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventbus.RawEvent(onpremID, ">")},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.Envelope
	for want := int(info.NumPending); len(out) < want; {
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var env eventsv1.Envelope
			if err := proto.Unmarshal(m.Data(), &env); err != nil {
				t.Fatal(err)
			}
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(env.GetBody(), &ev); err != nil {
				t.Fatalf("body is not the event's JSON: %v", err)
			}
			h := m.Headers()
			if env.GetSource() != eventsv1.Source_SOURCE_ONPREM || h.Get(eventbus.HeaderSource) != eventbus.SourceOnPrem {
				t.Fatalf("event %s: source %v / header %q", ev.ID, env.GetSource(), h.Get(eventbus.HeaderSource))
			}
			if id := onprem.MessageID(onpremID, ev.ID); env.GetMessageId() != id || h.Get(eventbus.HeaderMsgID) != id {
				t.Fatalf("event %s: message id %s, header %s, want %s", ev.ID, env.GetMessageId(), h.Get(eventbus.HeaderMsgID), id)
			}
			if m.Subject() != eventbus.RawEvent(onpremID, env.GetEvent()) || env.GetDomain() != "crm.example.com" {
				t.Fatalf("event %s: subject %s, envelope %v", ev.ID, m.Subject(), &env)
			}
			out = append(out, &env)
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func eventIDs(t *testing.T, envs []*eventsv1.Envelope) []string {
	t.Helper()
	ids := make([]string, len(envs))
	for i, env := range envs {
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(env.GetBody(), &ev); err != nil {
			t.Fatal(err)
		}
		ids[i] = ev.ID
	}
	return ids
}

// TestOnpremForwarderEndToEnd: PHP fires events through the
// b24hub.forwarder module; its agent ships them, signed, to a real ingress
// and JetStream. With the ingress down they wait in the spool; when it is
// back each is stored exactly once and in capture order. Tampered, wrongly
// signed and old deliveries are refused with their reason.
func TestOnpremForwarderEndToEnd(t *testing.T) {
	f := newForwarder(t)
	srv := natstest.Start(t)
	nc, js := srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	ps, err := portals.ParseFile([]byte("installations:\n  - id: " + onpremID + "\n    secret: " + onpremSecret + "\n    domain: crm.example.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg := portals.NewRegistry()
	if err := reg.Replace(portals.SourceFile, ps); err != nil {
		t.Fatal(err)
	}
	in := startOnpremIngress(t, nc, reg, "127.0.0.1:0")
	url := "http://" + in.addr + onprem.Path

	var installed map[string]string
	f.json(&installed, "install", url, onpremID, onpremSecret)

	// Up: eight events (batch size 3 → three deliveries) arrive in order.
	f.fire(1, 8)
	before := f.spool()
	if before.Size != 8 {
		t.Fatalf("spool holds %d events, want 8", before.Size)
	}
	if r := f.ship(); r.Waiting != 0 || r.LastSuccessAt == 0 {
		t.Fatalf("ship with the ingress up: %+v", r)
	}
	stored := storedOnprem(t, js)
	if got := eventIDs(t, stored); strings.Join(got, ",") != strings.Join(before.IDs, ",") {
		t.Fatalf("stream order %v, spool order %v", got, before.IDs)
	}
	wantEvents := []string{"ONAFTERCRMDEALADD", "ONAFTERCRMDEALUPDATE", "ONAFTERCRMDEALDELETE", "ONSOMETHINGHAPPENED"}
	for i, env := range stored {
		if env.GetEvent() != wantEvents[i%4] || env.GetEntityId() != strconv.Itoa(i+1) {
			t.Errorf("event %d: %s entity %q, want %s entity %d", i, env.GetEvent(), env.GetEntityId(), wantEvents[i%4], i+1)
		}
	}

	// Down: events wait in the spool, the reason is recorded.
	in.stop()
	f.fire(9, 5)
	waiting := f.spool()
	r := f.ship()
	if r.Waiting != 5 || !strings.Contains(r.LastError, "no answer from the ingress") {
		t.Fatalf("ship with the ingress down: %+v", r)
	}
	if n := len(storedOnprem(t, js)); n != 8 {
		t.Fatalf("stream holds %d on-premise events while the ingress was down, want 8", n)
	}

	// Back on the same address: every waiting event, once, in order.
	startOnpremIngress(t, nc, reg, in.addr)
	if r := f.ship(); r.Waiting != 0 {
		t.Fatalf("ship after the ingress returned: %+v", r)
	}
	all := eventIDs(t, storedOnprem(t, js))
	if want := append(append([]string{}, before.IDs...), waiting.IDs...); strings.Join(all, ",") != strings.Join(want, ",") {
		t.Fatalf("stream holds %v, want each of %v exactly once in order", all, want)
	}

	// A re-send (the module lost the answer) is acknowledged and de-duplicated.
	last := stored[len(stored)-1]
	body := []byte(`{"installation":"` + onpremID + `","events":[` + string(last.GetBody()) + `]}`)
	now := time.Now().Unix()
	code, answer := postSigned(t, url, onpremID, now, f.sign(onpremSecret, now, body), body)
	if code != http.StatusOK || !strings.Contains(answer, eventIDs(t, stored[len(stored)-1:])[0]) {
		t.Fatalf("re-send: %d %s", code, answer)
	}
	if n := len(storedOnprem(t, js)); n != 13 {
		t.Fatalf("re-send stored again: %d events, want 13", n)
	}

	// Refusals, signed by the module's PHP code.
	fresh := []byte(strings.Replace(string(body), eventIDs(t, stored[len(stored)-1:])[0], "5f0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b", 1))
	old := now - 600
	tests := []struct {
		name string
		ts   int64
		sig  string
		body []byte
		code int
		want string
	}{
		{"tampered body", now, f.sign(onpremSecret, now, fresh), bytes.Replace(fresh, []byte(`"id":`), []byte(`"id" :`), 1), 401, `"bad signature"`},
		{"wrong secret", now, f.sign("another-secret-another-secret-another", now, fresh), fresh, 401, `"bad signature"`},
		{"old timestamp", old, f.sign(onpremSecret, old, fresh), fresh, 401, `"stale timestamp: X-B24hub-Timestamp is 10m`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, answer := postSigned(t, url, onpremID, tt.ts, tt.sig, tt.body)
			if code != tt.code || !strings.Contains(answer, tt.want) {
				t.Fatalf("answer %d %s, want %d with %s", code, answer, tt.code, tt.want)
			}
		})
	}
	code, answer = postSigned(t, url, "nobody", now, f.sign(onpremSecret, now, fresh), fresh)
	if code != http.StatusForbidden || !strings.Contains(answer, "unknown installation") {
		t.Fatalf("unknown installation: %d %s", code, answer)
	}
	if n := len(storedOnprem(t, js)); n != 13 {
		t.Fatalf("a refused delivery was stored: %d events, want 13", n)
	}
}

func postSigned(t *testing.T, url, installation string, ts int64, sig string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(onprem.HeaderInstallation, installation)
	req.Header.Set(onprem.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(onprem.HeaderSignature, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
