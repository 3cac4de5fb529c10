package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOnpremEventsReachTheLedger: an on-premise installation's PHP events,
// fired through the b24hub.forwarder module (on its stand-in kernel) and
// shipped by its agent to the whole local stack, land in the delivery
// ledger with source "onprem" and are found by the monitor's API, like
// any other event.
func TestOnpremEventsReachTheLedger(t *testing.T) {
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
	secret := strings.Repeat("k", 40)
	portalsFile := filepath.Join(t.TempDir(), "portals.yaml")
	if err := os.WriteFile(portalsFile, []byte("installations:\n  - id: crm-main\n    secret: "+secret+"\n    domain: crm.example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOptions{env: map[string]string{"B24HUB_PORTALS_FILE": portalsFile}, noQuiesce: true})

	db := filepath.Join(t.TempDir(), "bitrix.sqlite")
	phpRun := func(args ...string) []byte {
		t.Helper()
		var stderr bytes.Buffer
		cmd := exec.Command(php, append([]string{script, db}, args...)...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("php %v: %v\n%s%s", args, err, out, stderr.Bytes())
		}
		return out
	}
	phpRun("install", "http://"+s.ingress.Addr()+"/onprem/v1/events", "crm-main", secret)
	// Four events: a deal add, update and delete, and a custom module's event.
	phpRun("fire", "501", "4")
	var shipped struct {
		Waiting   int    `json:"waiting"`
		LastError string `json:"last_error"`
	}
	if err := json.Unmarshal(phpRun("ship"), &shipped); err != nil || shipped.Waiting != 0 {
		t.Fatalf("ship: %+v %v", shipped, err)
	}

	want := map[string]bool{"ONAFTERCRMDEALADD": true, "ONAFTERCRMDEALUPDATE": true, "ONAFTERCRMDEALDELETE": true, "ONSOMETHINGHAPPENED": true}
	s.eventually("on-premise events in the ledger", 30*time.Second, func() bool {
		rows, err := s.db.Query(context.Background(), `SELECT event_type, source, domain FROM monitor.webhook_events WHERE portal = 'crm-main'`)
		if err != nil {
			return false
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var typ, source, domain string
			if err := rows.Scan(&typ, &source, &domain); err != nil {
				return false
			}
			if !want[typ] || source != "onprem" || domain != "crm.example.com" {
				t.Fatalf("ledger row %s source %q domain %q", typ, source, domain)
			}
			n++
		}
		return n == len(want)
	})

	// The monitor's API (the dashboard's source) finds them by source.
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.monitor.Addr()+"/api/v1/events?portal=crm-main&source=onprem", nil)
	req.Header.Set("Authorization", "Bearer "+s.monitor.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Events []struct {
			EventType string `json:"event_type"`
			Source    string `json:"source"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != http.StatusOK || len(page.Events) != len(want) {
		t.Fatalf("API: %d %+v %v", resp.StatusCode, page, err)
	}
}
