package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/fakeportal"
)

// TestAppPortalTokensExpireUnderFaults installs the application on a second
// fake portal through the real path (the portal POSTs ONAPPINSTALL to the
// ingress, the subscriptions service verifies it, stores the sealed tokens
// and binds the events), then, with the portal answering 30%
// QUERY_LIMIT_EXCEEDED, 5% 500 and 5% HTML pages, expires every access
// token again and again while deals change and the portal pushes their
// events. deal-sync must mirror every change with the stored OAuth
// credentials, the portal must see exactly one refresh per expiry across
// every service that calls it, and the limit must never be exceeded. The
// next expiry comes as soon as a round is mirrored, while other calls are
// still in flight: this found consumers dead-lettering events when their
// cached token was two rotations behind (fixed in libs/bitrix, see
// TestCachedTokenTwoRotationsBehind).
func TestAppPortalTokensExpireUnderFaults(t *testing.T) {
	parallelShort(t)
	const clientID, secret = "local.b24hub.test", "app-secret-for-tests-only"
	app, err := fakeportal.New(fakeportal.Config{MemberID: "a0a0a0a0b1b1b1b1c2c2c2c2d3d3d3d3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	const deals = 40
	for i := 1; i <= deals; i++ {
		app.CreateDeal(map[string]string{"TITLE": fmt.Sprint("App deal ", i), "STAGE_ID": "NEW"}, false)
	}
	env := stackEnv("B24HUB_APP_CLIENT_ID", clientID, "B24HUB_APP_CLIENT_SECRET", secret,
		"B24HUB_INSTALL_ALLOWED_HOSTS", hostOf(app.URL()))
	if chaos() {
		// Hybrid delivery (the default): every change comes twice, pushed
		// and from the offline queue polled every 2 s, so calls are in
		// flight whenever a token expires.
		env["B24HUB_OFFLINE_POLL_INTERVAL"] = "2s"
	} else {
		// Push only: every change is one event.
		subs := filepath.Join(t.TempDir(), "subscriptions.yaml")
		if err := os.WriteFile(subs, []byte("defaults:\n  mode: push\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env["B24HUB_SUBSCRIPTIONS_FILE"] = subs
	}
	s := startStack(t, stackOptions{env: env})

	// app.info answers CODE = the client id, as for a local app.
	app.InstallApp(fakeportal.App{ClientID: clientID, ClientSecret: secret, Code: clientID, InstallHandler: s.ingressURL()})
	s.eventually("app portal registered and its events bound", 60*time.Second, func() bool {
		p, ok := s.reg.Lookup(app.MemberID())
		if !ok || !p.Active {
			return false
		}
		for _, b := range app.Bindings() {
			if strings.HasPrefix(b, "ONCRMDEALUPDATE http") { // pushed, not only queued offline
				return true
			}
		}
		return false
	})
	// The install's own work (first reconciliation, bindings) settles first.
	s.eventually("stack idle after the install", 3*time.Minute, func() bool { return s.pending() == 0 })

	app.ResetStats()
	app.SetFaults(fakeportal.Faults{ServerErrorRate: 0.05, HTMLRate: 0.05, HTMLStatus: http.StatusBadGateway})
	app.SetQueryLimitRate(0.30)
	expiries := pick(3, 10)
	ctx := context.Background()
	for round := 1; round <= expiries; round++ {
		app.ExpireTokens()
		stage := fmt.Sprint("E", round)
		for i := 1; i <= deals; i++ {
			app.UpdateDeal(int64(i), map[string]string{"STAGE_ID": stage}, true) // pushed to the ingress
		}
		s.eventually(fmt.Sprintf("expiry %d: every change mirrored", round), pick(2*time.Minute, 3*time.Minute), func() bool {
			var n int
			_ = s.db.QueryRow(ctx, `SELECT count(*) FROM deal_sync.deals WHERE member_id = $1 AND stage_id = $2`, app.MemberID(), stage).Scan(&n)
			return n == deals
		})
		if got := app.Stats().Refreshes; got != int64(round) {
			t.Fatalf("expiry %d: the portal saw %d refreshes in all, want %d (one per expiry)", round, got, round)
		}
	}
	s.eventually("stack idle", 2*time.Minute, func() bool { return s.pending() == 0 })
	st := app.Stats()
	t.Logf("%d expiries: %d REST requests, %d refreshes, %d injected QUERY_LIMIT_EXCEEDED, %d injected 500/HTML, %d bucket rejections, max level %.1f of 50, %d pushes sent",
		expiries, st.Requests, st.Refreshes, app.InjectedQueryLimits(), st.InjectedFaults, st.QueryLimitExceeded, st.MaxLevel, st.PushesSent)
	if st.QueryLimitExceeded != 0 || st.MaxLevel > 50 {
		t.Errorf("limit exceeded: %d bucket rejections, max level %.1f", st.QueryLimitExceeded, st.MaxLevel)
	}
	if dl := s.deadLetters(); len(dl) > 0 {
		t.Errorf("dead letters: %v", dl)
	}
	s.checkRunners()
}
