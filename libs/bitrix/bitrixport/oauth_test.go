package bitrixport_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/nats-io/nats.go/jetstream"
)

var testKey = bytes.Repeat([]byte{7}, bitrix.TokenKeySize)

// installed is a portal that installed the app on the fake, recorded the
// way the subscriptions service records it: tokens sealed in B24_TOKENS
// (bitrixport.SharedTokens, as subscriptions writes them), the record
// (client_endpoint, no webhook URL) in B24_PORTALS, seen by a service's
// registry through WatchKV.
type installed struct {
	in  fakeportal.Install
	app bitrixport.App
	reg *portals.Registry
}

func installApp(t *testing.T, js jetstream.JetStream, p *fakeportal.Portal) installed {
	t.Helper()
	ctx := context.Background()
	in := p.InstallApp(fakeportal.App{ClientID: "local.b24hub", ClientSecret: "s3cret"})
	app := bitrixport.App{ClientID: in.ClientID, ClientSecret: in.ClientSecret, CredentialsKey: testKey}
	tokens, err := bitrixport.SharedTokens(ctx, js, app)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.Put(ctx, in.MemberID, bitrix.Token{AccessToken: in.AccessToken, RefreshToken: in.RefreshToken,
		Expires: in.Expires, ClientEndpoint: in.ClientEndpoint, ServerEndpoint: in.ServerEndpoint,
		Domain: in.Domain, MemberID: in.MemberID, Scope: in.Scope}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		t.Fatal(err)
	}
	if err := portals.PutInstalled(ctx, kv, portals.Installed{MemberID: in.MemberID, Domain: in.Domain,
		TokenSHA256: portals.HashToken(in.ApplicationToken), ClientEndpoint: in.ClientEndpoint, Active: true}); err != nil {
		t.Fatal(err)
	}
	reg := portals.NewRegistry()
	wctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := reg.WatchKV(wctx, kv, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if got, ok := reg.Lookup(in.MemberID); !ok || got.WebhookURL != "" || got.ClientEndpoint == "" {
		t.Fatalf("registry record %+v %v", got, ok)
	}
	return installed{in: in, app: app, reg: reg}
}

// TestSharedClientsCallInstalledApps: two services build their clients the
// way their commands do and fetch from a portal that installed the app,
// through the tokens the subscriptions service stored; after the portal
// expires every access token, the next calls of both refresh once in all,
// and the rotated pair is what the store keeps.
func TestSharedClientsCallInstalledApps(t *testing.T) {
	ctx := context.Background()
	srv := provisioned(t)
	p := newFake(t, fakeportal.Config{})
	_, js := srv.JetStream(t)
	inst := installApp(t, js, p)
	id := bitrix.ID(p.CreateDeal(map[string]string{"TITLE": "through OAuth"}, false))

	var clients []*bitrix.Client
	for range 2 {
		_, js := srv.JetStream(t) // one connection per service
		rc, err := bitrixport.SharedClients(ctx, js, inst.reg, inst.app, bitrix.WithHTTPClient(p.Client()),
			bitrix.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		c, err := rc.ClientFor(ctx, inst.in.MemberID)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := rc.ClientFor(ctx, inst.in.MemberID); again != c {
			t.Error("client not reused")
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		deal, err := c.GetDeal(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if deal.Title != "through OAuth" {
			t.Fatalf("deal %v", deal)
		}
	}

	p.ExpireTokens()
	var wg sync.WaitGroup
	for _, c := range clients {
		for range 4 {
			wg.Go(func() {
				if _, err := c.GetDeal(ctx, id); err != nil {
					t.Errorf("after expiry: %v", err)
				}
			})
		}
	}
	wg.Wait()
	if got := p.Stats().Refreshes; got != 1 {
		t.Fatalf("portal saw %d refreshes, want 1 for both services", got)
	}
	tokens, _ := bitrixport.SharedTokens(ctx, js, inst.app)
	tok, _, err := tokens.Load(ctx, inst.in.MemberID)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == inst.in.RefreshToken || tok.AccessToken == inst.in.AccessToken || tok.LeaseOwner != "" {
		t.Fatalf("stored token not rotated: %+v", tok)
	}
}

// TestRegistryClientsInstalledPortalErrors: what a consumer gets for an
// installed portal it cannot call. All are permanent (the event is
// dead-lettered and can be replayed once the configuration is fixed) and
// say what to fix.
func TestRegistryClientsInstalledPortalErrors(t *testing.T) {
	ctx := context.Background()
	srv := provisioned(t)
	p := newFake(t, fakeportal.Config{})
	_, js := srv.JetStream(t)
	inst := installApp(t, js, p)
	member := inst.in.MemberID

	otherKey := bytes.Repeat([]byte{8}, bitrix.TokenKeySize)
	for _, tt := range []struct {
		name string
		app  bitrixport.App
		prep func(t *testing.T)
		want string
	}{
		{name: "no key", app: bitrixport.App{ClientID: "local.b24hub", ClientSecret: "s3cret"}, want: "B24HUB_CREDENTIALS_KEY"},
		{name: "no client secret", app: bitrixport.App{ClientID: "local.b24hub", CredentialsKey: testKey}, want: "B24HUB_APP_CLIENT_SECRET"},
		{name: "another key", app: bitrixport.App{ClientID: "local.b24hub", ClientSecret: "s3cret", CredentialsKey: otherKey}, want: "B24HUB_CREDENTIALS_OLD_KEYS"},
		{name: "uninstalled tokens", app: inst.app, prep: func(t *testing.T) {
			tokens, _ := bitrixport.SharedTokens(ctx, js, inst.app)
			if err := tokens.Delete(ctx, member); err != nil {
				t.Fatal(err)
			}
		}, want: "reinstall"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prep != nil {
				tt.prep(t)
			}
			rc, err := bitrixport.SharedClients(ctx, js, inst.reg, tt.app)
			if err != nil {
				t.Fatal(err)
			}
			_, err = rc.ClientFor(ctx, member)
			if !errors.Is(err, bitrixport.ErrNoCredentials) || !errors.Is(err, consumer.ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want permanent ErrNoCredentials mentioning %q", err, tt.want)
			}
		})
	}
}
