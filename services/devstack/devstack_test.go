package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestDemoCurlIsAccepted runs the local stack as a new user would and posts
// the printed demo event: it must get 200 and land in the stream without
// secrets.
func TestDemoCurlIsAccepted(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"B24HUB_DEV_DATA_DIR":  dir,
		"B24HUB_DEV_NATS_PORT": "-1",
		"B24HUB_INGRESS_ADDR":  "127.0.0.1:0",
		"B24HUB_ADMIN_ADDR":    "127.0.0.1:0",
		"B24HUB_LOG_LEVEL":     "error",
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, pw); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	var natsURL, curl string
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	deadline := time.After(60 * time.Second)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for curl == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stack exited before printing the demo curl")
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "NATS JetStream: "); ok {
				natsURL = strings.TrimSpace(v)
			}
			if strings.HasPrefix(strings.TrimSpace(l), "curl ") {
				curl = strings.TrimSpace(l)
			}
		case <-deadline:
			t.Fatal("no demo curl printed within 60s")
		}
	}
	go func() {
		for range lines { // keep draining logs
		}
	}()
	m := regexp.MustCompile(`-X POST (\S+) .*--data '([^']+)'`).FindStringSubmatch(curl)
	if m == nil {
		t.Fatalf("cannot parse curl: %s", curl)
	}
	resp, err := http.Post(m[1], "application/x-www-form-urlencoded", strings.NewReader(m[2]))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("demo curl: %d %s", resp.StatusCode, body)
	}

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(context.Background())
	if info.State.Msgs != 1 {
		t.Fatalf("stream has %d messages", info.State.Msgs)
	}
	raw, err := s.GetMsg(context.Background(), info.State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw.Data), "s6p6eclrvim6da22ft9ch94ekreb52lv") || strings.Contains(string(raw.Data), "4s386p3q0tr8dy89xvmt96234v3dljg8") {
		t.Fatal("secrets reached the stream")
	}
}
