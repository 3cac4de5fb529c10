package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
)

// TestRun starts the binary's run function against an embedded NATS and a
// fresh database, reads the printed address and token, and shuts down.
func TestRun(t *testing.T) {
	srv := natstest.Start(t)
	env := map[string]string{
		"B24HUB_NATS_URL":     srv.URL(),
		"B24HUB_DATABASE_URL": pgtest.NewDatabase(t),
		"B24HUB_MONITOR_ADDR": "127.0.0.1:0",
		"B24HUB_ADMIN_ADDR":   "127.0.0.1:0",
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- command.Run(ctx, nil, func(k string) string { return env[k] }, pw)
		pw.Close()
	}()
	var addr, token string
	sc := bufio.NewScanner(pr)
	for sc.Scan() && addr == "" {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "monitor: no B24HUB_MONITOR_TOKEN set; generated API token: "); ok {
			token = v
		}
		if v, ok := strings.CutPrefix(line, "monitor: dashboard and API on http://"); ok {
			addr = strings.TrimSuffix(v, "/")
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" || len(token) < 32 {
		t.Fatalf("addr %q token %q", addr, token)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/v1/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("API never answered 200: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("run did not stop")
	}
}
