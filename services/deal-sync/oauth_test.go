package dealsync_test

import (
	"context"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/portals"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
)

// TestMirrorsDealsOfAnInstalledApp runs deal-sync as its command does
// (configuration from the environment, bitrixport.SharedClients) for a
// portal that installed the application instead of giving a webhook: the
// tokens are where and how the subscriptions service stores them
// (B24_TOKENS, sealed with B24HUB_CREDENTIALS_KEY) and the portal record has
// a client_endpoint and no webhook URL. Deals are fetched with the app's
// access token, and after the portal expires it, through one refresh.
func TestMirrorsDealsOfAnInstalledApp(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fakeportal.Config{})
	in := e.portal.InstallApp(fakeportal.App{ClientID: "local.b24hub", ClientSecret: "s3cret"})

	fromEnv, err := dealsync.ConfigFromEnv(func(k string) string {
		return map[string]string{
			"B24HUB_CREDENTIALS_KEY":   "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
			"B24HUB_APP_CLIENT_ID":     in.ClientID,
			"B24HUB_APP_CLIENT_SECRET": in.ClientSecret,
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if !fromEnv.App.CanRefresh() {
		t.Fatalf("app settings not read: %s", fromEnv.App)
	}

	// What the subscriptions service does on a verified ONAPPINSTALL.
	tokens, err := bitrixport.SharedTokens(ctx, e.js, fromEnv.App)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.Put(ctx, in.MemberID, bitrix.Token{AccessToken: in.AccessToken, RefreshToken: in.RefreshToken,
		Expires: in.Expires, ClientEndpoint: in.ClientEndpoint, ServerEndpoint: in.ServerEndpoint,
		Domain: in.Domain, MemberID: in.MemberID, Scope: in.Scope}); err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		t.Fatal(err)
	}
	if err := portals.PutInstalled(ctx, kv, portals.Installed{MemberID: in.MemberID, Domain: in.Domain,
		TokenSHA256: portals.HashToken(in.ApplicationToken), ClientEndpoint: in.ClientEndpoint, Active: true}); err != nil {
		t.Fatal(err)
	}

	// What cmd/deal-sync does.
	reg := portals.NewRegistry()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := reg.WatchKV(wctx, kv, quiet()); err != nil {
		t.Fatal(err)
	}
	clients, err := bitrixport.SharedClients(ctx, e.js, reg, fromEnv.App, bitrix.WithHTTPClient(e.portal.Client()), bitrix.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	e.startWith(fastConfig(), clients)

	id := e.portal.CreateDeal(map[string]string{"TITLE": "Installed"}, true)
	e.eventually("deal mirrored", func() bool { r, ok := e.mirror(id); return ok && r.title == "Installed" })

	e.portal.ExpireTokens()
	e.portal.UpdateDeal(id, map[string]string{"TITLE": "Refreshed"}, true)
	e.eventually("update mirrored", func() bool { r, ok := e.mirror(id); return ok && r.title == "Refreshed" })
	if got := e.portal.Stats().Refreshes; got != 1 {
		t.Fatalf("portal saw %d refreshes, want 1", got)
	}
	tok, _, err := tokens.Load(ctx, in.MemberID)
	if err != nil || tok.RefreshToken == in.RefreshToken {
		t.Fatalf("rotated token not stored: %+v %v", tok, err)
	}
}
