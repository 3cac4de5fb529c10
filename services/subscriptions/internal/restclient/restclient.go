// Package restclient hands out one Bitrix24 REST client per portal:
// incoming-webhook portals from the portals file get a webhook client,
// installed apps an OAuth client whose tokens live encrypted in the
// credential store. Clients are cached (they hold the current access token
// and per-method pauses) and share one rate limiter.
package restclient

import (
	"context"
	"errors"
	"fmt"
	"github.com/b24hub/b24hub/libs/bitrix/allowlist"
	"log/slog"
	"net/http"
	"sync"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/portals"
)

// ErrNoRoute means b24hub has no way to call a portal: neither a webhook
// URL nor stored OAuth credentials.
var ErrNoRoute = errors.New("restclient: no webhook URL or OAuth credentials for portal")

// ErrNoAppCredentials means installed portals cannot be called because the
// application's client id and secret are not configured.
var ErrNoAppCredentials = errors.New("restclient: B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET are needed to call installed portals")

// Config configures the factory.
type Config struct {
	// ClientID and ClientSecret are the application's OAuth credentials;
	// without them only webhook portals can be called.
	ClientID, ClientSecret string
	// HTTPClient is used by every client (optional).
	HTTPClient *http.Client
	// Limiter is shared by every client (optional: one local limiter).
	Limiter bitrix.Limiter
	// AllowedHosts are where a portal's redirect may lead besides cloud
	// domains over https (optional: cloud domains only).
	AllowedHosts *allowlist.List
}

// Lookup finds a portal; *portals.Registry implements it.
type Lookup interface {
	Lookup(memberID string) (portals.Portal, bool)
}

// Factory builds and caches clients.
type Factory struct {
	cfg    Config
	lookup Lookup
	tokens bitrix.TokenStore
	log    *slog.Logger

	mu      sync.Mutex
	clients map[string]*bitrix.Client
}

// New returns a Factory.
func New(cfg Config, lookup Lookup, tokens bitrix.TokenStore, log *slog.Logger) *Factory {
	if cfg.Limiter == nil {
		cfg.Limiter = bitrix.NewLocalLimiter(bitrix.DefaultMargin, bitrix.SystemClock{})
	}
	return &Factory{cfg: cfg, lookup: lookup, tokens: tokens, log: log, clients: map[string]*bitrix.Client{}}
}

// OAuth reports whether memberID is an installed app portal with stored
// credentials (event.bind, offline events and event.test need that).
func (f *Factory) OAuth(ctx context.Context, memberID string) bool {
	p, ok := f.lookup.Lookup(memberID)
	if !ok || p.WebhookURL != "" || !p.Active {
		return false
	}
	_, _, err := f.tokens.Load(ctx, memberID)
	return err == nil
}

// Client returns the portal's client.
func (f *Factory) Client(ctx context.Context, memberID string) (*bitrix.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[memberID]; ok {
		return c, nil
	}
	p, ok := f.lookup.Lookup(memberID)
	if !ok {
		return nil, fmt.Errorf("restclient: portal %s is not registered", memberID)
	}
	cfg := bitrix.Config{MemberID: memberID}
	if p.Plan == "enterprise" {
		cfg.Rate = bitrix.EnterpriseRate
	}
	switch {
	case p.WebhookURL != "":
		cfg.WebhookURL = p.WebhookURL
	default:
		if _, _, err := f.tokens.Load(ctx, memberID); err != nil {
			if errors.Is(err, bitrix.ErrTokenNotFound) {
				return nil, fmt.Errorf("%w %s", ErrNoRoute, memberID)
			}
			return nil, err
		}
		if f.cfg.ClientID == "" || f.cfg.ClientSecret == "" {
			return nil, ErrNoAppCredentials
		}
		cfg.OAuth = &bitrix.OAuthConfig{ClientID: f.cfg.ClientID, ClientSecret: f.cfg.ClientSecret, MemberID: memberID, Store: f.tokens}
	}
	opts := []bitrix.Option{bitrix.WithLimiter(f.cfg.Limiter), bitrix.WithLogger(f.log), bitrix.WithAllowedHosts(f.cfg.AllowedHosts)}
	if f.cfg.HTTPClient != nil {
		opts = append(opts, bitrix.WithHTTPClient(f.cfg.HTTPClient))
	}
	c, err := bitrix.New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	f.clients[memberID] = c
	return c, nil
}

// Forget drops the cached client of memberID, e.g. after a reinstall
// replaced its credentials.
func (f *Factory) Forget(memberID string) {
	f.mu.Lock()
	delete(f.clients, memberID)
	f.mu.Unlock()
}
