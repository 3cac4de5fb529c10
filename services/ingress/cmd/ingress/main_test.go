package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/natstest"
)

// TestAdminPort: the ingress serves /healthz and /metrics on its admin
// address (B24HUB_ADMIN_ADDR), which the Deployment's probes and the
// ServiceMonitor use, like every service's (libs/svcmain), and stops
// cleanly on cancel.
func TestAdminPort(t *testing.T) {
	ns := natstest.Start(t)
	env := map[string]string{
		"B24HUB_NATS_URL":     ns.URL(),
		"B24HUB_INGRESS_ADDR": "127.0.0.1:0",
		"B24HUB_ADMIN_ADDR":   "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- command.Run(ctx, nil, func(k string) string { return env[k] }, pw)
		pw.Close()
	}()
	re := regexp.MustCompile(`"admin":"([^"]+)"`) // svcmain's "ingress starting" line
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- "http://" + m[1]
			}
		}
	}()
	var base string
	select {
	case base = <-addr:
	case err := <-done:
		t.Fatalf("run ended before the admin port was up: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("no admin address printed")
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s on the admin port = %d, want 200", p, resp.StatusCode)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("run did not stop after cancel")
	}
}
