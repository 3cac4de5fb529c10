package bitrix_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/nats-io/nats.go/jetstream"
)

// platformBucket creates (idempotently) the platform's key-value bucket
// name with the configuration eventbus.Provision gives it, so the tests run
// against the buckets the services bind. A non-empty as renames it, for
// tests that need several independent buckets of that kind.
func platformBucket(t testing.TB, js jetstream.JetStream, name, as string) jetstream.KeyValue {
	t.Helper()
	for _, cfg := range eventbus.Buckets(eventbus.StreamOptions{}) {
		if cfg.Bucket != name {
			continue
		}
		if as != "" {
			cfg.Bucket = as
		}
		kv, err := js.CreateOrUpdateKeyValue(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	t.Fatalf("eventbus defines no bucket %s", name)
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newFake(t testing.TB, cfg fakeportal.Config) *fakeportal.Portal {
	t.Helper()
	p, err := fakeportal.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// webhookClient calls the fake through an incoming webhook.
func webhookClient(t testing.TB, p *fakeportal.Portal, cfg bitrix.Config, opts ...bitrix.Option) *bitrix.Client {
	t.Helper()
	cfg.WebhookURL = p.AddWebhook(1, "hookcode")
	if cfg.MemberID == "" {
		cfg.MemberID = p.MemberID()
	}
	opts = append([]bitrix.Option{bitrix.WithHTTPClient(p.Client()), bitrix.WithLogger(quiet())}, opts...)
	c, err := bitrix.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// install registers an app on the fake and seeds store with its tokens, the
// way the subscriptions service does on ONAPPINSTALL.
func install(t testing.TB, p *fakeportal.Portal, store bitrix.TokenStore) fakeportal.Install {
	t.Helper()
	in := p.InstallApp(fakeportal.App{ClientID: "local.b24hub", ClientSecret: "s3cret"})
	_, err := store.CompareAndSwap(context.Background(), in.MemberID, 0, bitrix.Token{
		AccessToken: in.AccessToken, RefreshToken: in.RefreshToken, Expires: in.Expires,
		ClientEndpoint: in.ClientEndpoint, ServerEndpoint: in.ServerEndpoint, Domain: in.Domain,
		MemberID: in.MemberID, Scope: in.Scope,
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func oauthClient(t testing.TB, p *fakeportal.Portal, in fakeportal.Install, store bitrix.TokenStore, cfg bitrix.Config, opts ...bitrix.Option) *bitrix.Client {
	t.Helper()
	cfg.OAuth = &bitrix.OAuthConfig{ClientID: in.ClientID, ClientSecret: in.ClientSecret, MemberID: in.MemberID, Store: store}
	opts = append([]bitrix.Option{bitrix.WithHTTPClient(p.Client()), bitrix.WithLogger(quiet())}, opts...)
	c, err := bitrix.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sink is an event handler recording pushes.
type sink struct {
	mu     sync.Mutex
	events []*b24event.Event
	srv    *httptest.Server
}

func newSink(t testing.TB) *sink {
	s := &sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body, err := b24event.Decode(r.Header.Get("Content-Type"), b, b24event.Limits{})
		if err != nil {
			t.Errorf("push does not decode: %v", err)
			return
		}
		ev, err := body.Event()
		if err != nil {
			t.Errorf("push is not an event: %v", err)
			return
		}
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) URL() string { return s.srv.URL + "/b24/events" }

func (s *sink) got() []*b24event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*b24event.Event(nil), s.events...)
}

func drain(t testing.TB, p *fakeportal.Portal) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

// settable is a fake-portal clock tests move by hand.
type settable struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settable) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settable) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
