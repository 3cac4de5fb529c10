package bitrix_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/natstest"
)

func TestOAuthRefreshOnExpiry(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	store := &bitrix.MemoryTokenStore{}
	in := install(t, p, store)
	c := oauthClient(t, p, in, store, bitrix.Config{})
	id := bitrix.ID(p.CreateDeal(nil, false))
	if _, err := c.GetDeal(ctx, id); err != nil {
		t.Fatal(err)
	}
	p.ExpireTokens()
	if _, err := c.GetDeal(ctx, id); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	tok, _, _ := store.Load(ctx, in.MemberID)
	if p.Stats().Refreshes != 1 || tok.RefreshToken == in.RefreshToken || tok.AccessToken == in.AccessToken {
		t.Fatalf("refreshes %d, stored %+v", p.Stats().Refreshes, tok)
	}
	// The portal's domain is kept: the refresh answer's "domain" is the
	// OAuth server's (§4.2).
	if tok.Domain != in.Domain || tok.LeaseOwner != "" {
		t.Fatalf("stored token %+v", tok)
	}
	// Only expired_token/invalid_token trigger a refresh.
	if _, err := c.GetDeal(ctx, 999); !errors.Is(err, bitrix.KindNotFound) || p.Stats().Refreshes != 1 {
		t.Fatalf("not found refreshed: %v", err)
	}
}

// TestOAuthClientEndpointFallback: a stored token without a
// client_endpoint is used with the configured one (the portal registry's);
// a stored one wins.
func TestOAuthClientEndpointFallback(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	in := p.InstallApp(fakeportal.App{ClientID: "local.b24hub", ClientSecret: "s3cret"})
	id := bitrix.ID(p.CreateDeal(nil, false))
	for _, tt := range []struct {
		name           string
		stored, config string
		wantHost       string // "" means no call may be made
	}{
		{"stored only", in.ClientEndpoint, "", in.Domain},
		{"config only", "", in.ClientEndpoint, in.Domain},
		{"stored wins", in.ClientEndpoint, "http://elsewhere.invalid/rest/", in.Domain},
		{"neither", "", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &bitrix.MemoryTokenStore{}
			store.Put(in.MemberID, bitrix.Token{AccessToken: in.AccessToken, RefreshToken: in.RefreshToken,
				ClientEndpoint: tt.stored, ServerEndpoint: in.ServerEndpoint, MemberID: in.MemberID})
			hc := p.Client()
			hosts := &hostRecorder{next: hc.Transport}
			hc.Transport = hosts
			c, err := bitrix.New(bitrix.Config{OAuth: &bitrix.OAuthConfig{ClientID: in.ClientID, ClientSecret: in.ClientSecret,
				MemberID: in.MemberID, Store: store, ClientEndpoint: tt.config}},
				bitrix.WithHTTPClient(hc), bitrix.WithLogger(quiet()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetDeal(ctx, id)
			switch {
			case tt.wantHost == "" && !errors.Is(err, bitrix.KindAuth):
				t.Fatalf("want an auth error, got %v", err)
			case tt.wantHost != "" && err != nil:
				t.Fatalf("GetDeal: %v", err)
			}
			if got := hosts.seen(); (tt.wantHost == "" && len(got) != 0) || (tt.wantHost != "" && (len(got) != 1 || got[0] != tt.wantHost)) {
				t.Fatalf("called hosts %v, want %q", got, tt.wantHost)
			}
		})
	}
}

// hostRecorder records the host of every request.
type hostRecorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	hosts []string
}

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hosts = append(h.hosts, r.URL.Host)
	h.mu.Unlock()
	return h.next.RoundTrip(r)
}

func (h *hostRecorder) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.hosts...)
}

func TestInvalidGrantAsksToReauthorize(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	store := &bitrix.MemoryTokenStore{}
	in := install(t, p, store)
	c := oauthClient(t, p, in, store, bitrix.Config{})
	p.RevokeRefreshTokens(in.ClientID)
	p.ExpireTokens()
	_, err := c.GetDeal(ctx, 1)
	var e *bitrix.Error
	if !errors.As(err, &e) || e.Kind() != bitrix.KindReauthorize || !strings.Contains(err.Error(), "re-authorize portal "+in.MemberID) {
		t.Fatalf("got %v", err)
	}
	if bitrix.Retryable(err) {
		t.Fatal("re-authorization reported as retryable")
	}
	// The lease is released, so a later refresh (after re-install) is not
	// blocked.
	if tok, _, _ := store.Load(ctx, in.MemberID); tok.LeaseOwner != "" {
		t.Fatalf("lease left behind: %+v", tok)
	}
}

// replicasRefresh runs two clients sharing one token store through several
// expiries, each hit by concurrent calls, and checks that the portal saw
// exactly one refresh per expiry.
func replicasRefresh(t *testing.T, p *fakeportal.Portal, in fakeportal.Install, stores [2]bitrix.TokenStore) {
	ctx := context.Background()
	cfg := bitrix.Config{Rate: bitrix.Rate{PerSecond: 1000, Burst: 1000}}
	a := oauthClient(t, p, in, stores[0], cfg)
	b := oauthClient(t, p, in, stores[1], cfg)
	id := bitrix.ID(p.CreateDeal(nil, false))
	const rounds = 3
	for round := 1; round <= rounds; round++ {
		p.ExpireTokens()
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			c := a
			if i%2 == 1 {
				c = b
			}
			wg.Go(func() {
				if _, err := c.GetDeal(ctx, id); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		if got := p.Stats().Refreshes; got != int64(round) {
			t.Fatalf("round %d: portal saw %d refreshes, want %d", round, got, round)
		}
	}
}

// roomy is a portal whose rate limit stays out of the way of refresh tests
// (two clients with private limiters would overflow the default bucket;
// TestReplicasShareLimiterThroughNATS covers that).
var roomy = fakeportal.Config{Rate: 1000, Burst: 1000}

func TestTwoReplicasRefreshOnceMemoryStore(t *testing.T) {
	p := newFake(t, roomy)
	store := &bitrix.MemoryTokenStore{}
	in := install(t, p, store)
	replicasRefresh(t, p, in, [2]bitrix.TokenStore{store, store})
}

func TestTwoReplicasRefreshOnceNATSStore(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	key := make([]byte, 32)
	var stores [2]bitrix.TokenStore
	for i := range stores {
		// Each replica has its own connection and KV handle.
		_, js := srv.JetStream(t)
		kv := platformBucket(t, js, eventbus.BucketTokens, "")
		sealer, err := bitrix.NewTokenCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		if stores[i], err = bitrix.NewKVTokenStore(kv, sealer); err != nil {
			t.Fatal(err)
		}
	}
	p := newFake(t, roomy)
	in := install(t, p, stores[0])
	replicasRefresh(t, p, in, stores)

	// Sealed at rest: the raw KV value does not contain the token.
	_, js := srv.JetStream(t)
	kv, _ := js.KeyValue(ctx, eventbus.BucketTokens)
	keys, _ := kv.ListKeys(ctx)
	for k := range keys.Keys() {
		e, _ := kv.Get(ctx, k)
		tok, _, _ := stores[0].Load(ctx, in.MemberID)
		if strings.Contains(string(e.Value()), tok.RefreshToken) {
			t.Fatal("refresh token stored in plaintext")
		}
	}
}

func TestKVTokenStoreContract(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "tok_contract"})
	if err != nil {
		t.Fatal(err)
	}
	kvStore, _ := bitrix.NewKVTokenStore(kv, nil)
	for name, s := range map[string]bitrix.TokenStore{"memory": &bitrix.MemoryTokenStore{}, "nats": kvStore} {
		t.Run(name, func(t *testing.T) { tokenStoreContract(t, s) })
	}
	_ = ctx
}

// tokenStoreContract is what every TokenStore must do (the PostgreSQL one in
// services/subscriptions should run it too).
func tokenStoreContract(t *testing.T, s bitrix.TokenStore) {
	ctx := context.Background()
	if _, _, err := s.Load(ctx, "m"); !errors.Is(err, bitrix.ErrTokenNotFound) {
		t.Fatalf("empty load: %v", err)
	}
	r1, err := s.CompareAndSwap(ctx, "m", 0, bitrix.Token{AccessToken: "a1"})
	if err != nil || r1 == 0 {
		t.Fatalf("create: %d %v", r1, err)
	}
	if _, err := s.CompareAndSwap(ctx, "m", 0, bitrix.Token{AccessToken: "dup"}); !errors.Is(err, bitrix.ErrTokenConflict) {
		t.Fatalf("second create: %v", err)
	}
	r2, err := s.CompareAndSwap(ctx, "m", r1, bitrix.Token{AccessToken: "a2"})
	if err != nil || r2 == r1 {
		t.Fatalf("update: %v", err)
	}
	if _, err := s.CompareAndSwap(ctx, "m", r1, bitrix.Token{AccessToken: "stale"}); !errors.Is(err, bitrix.ErrTokenConflict) {
		t.Fatalf("stale update: %v", err)
	}
	tok, rev, err := s.Load(ctx, "m")
	if err != nil || tok.AccessToken != "a2" || rev != r2 {
		t.Fatalf("load: %+v %d %v", tok, rev, err)
	}
}
