package bitrixport

import (
	"context"
	"fmt"
	"github.com/b24hub/b24hub/libs/svcmain"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go/jetstream"
)

// SharedLimiter returns a bitrix.KVLimiter over the platform's rate-limit
// bucket (eventbus.BucketRateLimit), so that every replica of every service
// calling a portal spends one leaky bucket per portal (§4.5: applications
// on one server share one limit). The bucket must exist: it is provisioned
// by eventbus.Provision (the local stack, `b24ctl topology apply`, the
// Kubernetes topology Job), never here.
func SharedLimiter(ctx context.Context, js jetstream.JetStream) (*bitrix.KVLimiter, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketRateLimit)
	if err != nil {
		return nil, fmt.Errorf("bitrixport: bucket %s: %w (run `b24ctl topology apply`)", eventbus.BucketRateLimit, err)
	}
	return bitrix.NewKVLimiter(kv, bitrix.KVLimiterConfig{})
}

// SharedClients returns the RegistryClients a service calls portals with:
// every client uses the shared limiter (SharedLimiter), and when app has a
// credentials key, portals installed as the application are called with
// the tokens the subscriptions service stored in eventbus.BucketTokens
// (sealed with that key; refreshed with app's client id and secret), and
// a portal's redirect is followed only to app.AllowedHosts or a cloud
// domain over https. opts add the logger, tracer and so on; they cannot
// replace the limiter or the allowed hosts.
//
// It fails when a bucket it needs does not exist. With a key but without
// the client id or secret, installed portals fail with ErrNoCredentials
// saying so, as they do without a key.
func SharedClients(ctx context.Context, js jetstream.JetStream, reg Lookup, app App, opts ...bitrix.Option) (*RegistryClients, error) {
	lim, err := SharedLimiter(ctx, js)
	if err != nil {
		return nil, err
	}
	// Last, so that it wins over a WithLimiter in opts.
	opts = append(append([]bitrix.Option(nil), opts...), bitrix.WithLimiter(lim), bitrix.WithAllowedHosts(app.AllowedHosts))
	if len(app.CredentialsKey) == 0 {
		r := NewRegistryClients(reg, opts...)
		r.noOAuth = "B24HUB_CREDENTIALS_KEY is not set for this service"
		return r, nil
	}
	tokens, err := SharedTokens(ctx, js, app)
	if err != nil {
		return nil, err
	}
	if !app.CanRefresh() {
		r := NewRegistryClients(reg, opts...)
		r.noOAuth = "B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET are not set for this service"
		return r, nil
	}
	return NewOAuthRegistryClients(reg, OAuthApp{ClientID: app.ClientID, ClientSecret: app.ClientSecret, Tokens: tokens}, opts...)
}

// SharedTokens returns the platform's token store: a bitrix.KVTokenStore
// on eventbus.BucketTokens sealed with app's credentials key. The
// subscriptions service writes installs through it; consumers read and
// refresh through it. The bucket must exist (eventbus.Provision).
func SharedTokens(ctx context.Context, js jetstream.JetStream, app App) (*bitrix.KVTokenStore, error) {
	cipher, err := app.Cipher()
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketTokens)
	if err != nil {
		return nil, fmt.Errorf("bitrixport: bucket %s: %w (run `b24ctl topology apply`)", eventbus.BucketTokens, err)
	}
	return bitrix.NewKVTokenStore(kv, cipher)
}

// ForProcess returns the portal clients of a service process: the portal
// registry the process watches (the portals file and B24_PORTALS, see
// svcmain.Process.Portals) and SharedClients over it, logging through the
// process's logger. It is how every consumer service's start builds them.
func ForProcess(ctx context.Context, p *svcmain.Process, portalsFile string, app App) (*RegistryClients, error) {
	reg, err := p.Portals(ctx, portalsFile)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(p.NATS)
	if err != nil {
		return nil, err
	}
	return SharedClients(ctx, js, reg, app, bitrix.WithLogger(p.Log))
}
