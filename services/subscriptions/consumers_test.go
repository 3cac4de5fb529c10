package subscriptions_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/fakeportal"
)

// TestConsumersCallWhatAnInstallStored: the credentials this service
// stores for a verified install are what a consumer service (deal-sync,
// telephony, tasks) calls the portal with, configured from the same
// variables: one bucket, one key, one format. When the portal expires the
// access token, the consumer's refresh is the only one, although this
// service keeps calling the portal too (probes, reconciliation).
func TestConsumersCallWhatAnInstallStored(t *testing.T) {
	ctx := context.Background()
	a := newFake(t, memberA)
	s := startStack(t, []*fakeportal.Portal{a}, desiredDoc)
	install(t, s, a)
	id := bitrix.ID(a.CreateDeal(map[string]string{"TITLE": "seen by a consumer"}, false))

	app, err := bitrixport.AppFromEnv(func(k string) string { return s.env[k] })
	if err != nil {
		t.Fatal(err)
	}
	clients, err := bitrixport.SharedClients(ctx, s.js, s.reg, app, bitrix.WithHTTPClient(a.Client()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := clients.ClientFor(ctx, memberA)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.GetDeal(ctx, id); err != nil || d.Title != "seen by a consumer" {
		t.Fatalf("GetDeal = %+v, %v", d, err)
	}

	before := a.Stats().Refreshes
	a.ExpireTokens()
	if _, err := c.GetDeal(ctx, id); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	// The service's own calls (probes every second, reconciliation) meet
	// the expired token too: two more requests reach the portal after the
	// consumer's.
	from := a.Stats().Requests
	eventually(t, 10*time.Second, "the service calling the portal after the expiry", func() (bool, string) {
		n := a.Stats().Requests - from
		return n >= 2, fmt.Sprintf("%d requests", n)
	})
	if got := a.Stats().Refreshes - before; got != 1 {
		t.Fatalf("%d refreshes after one expiry, want 1 across both services", got)
	}
}
