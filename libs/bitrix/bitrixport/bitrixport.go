// Package bitrixport connects consumers to Bitrix24: REST clients per
// portal built from the portal registry and stored credentials (an
// incoming webhook from the portals file, or an installed application's
// OAuth tokens from B24_TOKENS; never an event's own token), all sharing
// one leaky bucket per portal in B24_RATELIMIT ([SharedClients]); and the
// mapping of the REST client's error kinds onto the consumer runtime's
// error vocabulary, so that OVERLOAD_LIMIT or a rejected refresh token
// shows up in Outcome.error_kind.
package bitrixport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
)

// Clients gives a REST client for a portal by member_id. Services declare
// their dependency on it; [RegistryClients] is the production implementation
// and tests pass a fake portal's client.
type Clients interface {
	ClientFor(ctx context.Context, memberID string) (*bitrix.Client, error)
}

// ErrNoCredentials is returned for a portal the registry does not know, or
// knows without REST credentials. It is permanent: the event is
// dead-lettered and can be replayed once the portal is configured.
var ErrNoCredentials = errors.New("bitrixport: no REST credentials for portal")

// Lookup finds a portal; *portals.Registry implements it.
type Lookup interface {
	Lookup(memberID string) (portals.Portal, bool)
}

// OAuthApp lets RegistryClients call portals installed as an application:
// the application's credentials and the store holding each install's
// tokens.
type OAuthApp struct {
	// ClientID and ClientSecret authenticate token refreshes. Required.
	ClientID     string
	ClientSecret string // see ClientID
	// Tokens holds each installed portal's tokens by member_id. Required:
	// in services a bitrix.KVTokenStore on eventbus.BucketTokens, which the
	// subscriptions service fills on install (see SharedClients).
	Tokens bitrix.TokenStore
}

// Validate reports a missing field.
func (a OAuthApp) Validate() error {
	if a.ClientID == "" || a.ClientSecret == "" || a.Tokens == nil {
		return errors.New("bitrixport: OAuthApp needs ClientID, ClientSecret and Tokens")
	}
	return nil
}

// RegistryClients builds one bitrix.Client per portal from the registry
// record and keeps it (so its access token, rate limiter and method pauses
// persist); a changed record builds a new one:
//
//   - a portal with an incoming-webhook URL (the portals file) gets a
//     webhook client;
//   - a portal installed as an application (a record with a
//     client_endpoint and no webhook URL, written by the subscriptions
//     service) gets an OAuth client whose tokens come from the OAuthApp's
//     store and are refreshed through the portal's OAuth server
//     (server_endpoint), once per expiry across every replica.
type RegistryClients struct {
	reg   Lookup
	opts  []bitrix.Option
	oauth *OAuthApp // nil: installed portals cannot be called
	// noOAuth says why installed portals cannot be called.
	noOAuth string

	mu      sync.Mutex
	clients map[string]cached
}

type cached struct {
	webhook, endpoint, plan string
	c                       *bitrix.Client
}

// NewRegistryClients returns Clients backed by reg for portals with an
// incoming-webhook URL; installed (OAuth) portals fail with
// ErrNoCredentials. opts are passed to every bitrix.New (limiter, logger,
// tracer...).
func NewRegistryClients(reg Lookup, opts ...bitrix.Option) *RegistryClients {
	return &RegistryClients{reg: reg, opts: opts, clients: map[string]cached{},
		noOAuth: "this service has no application credentials (B24HUB_CREDENTIALS_KEY, B24HUB_APP_CLIENT_ID, B24HUB_APP_CLIENT_SECRET)"}
}

// NewOAuthRegistryClients is NewRegistryClients that also calls portals
// installed as app.
func NewOAuthRegistryClients(reg Lookup, app OAuthApp, opts ...bitrix.Option) (*RegistryClients, error) {
	if err := app.Validate(); err != nil {
		return nil, err
	}
	r := NewRegistryClients(reg, opts...)
	r.oauth, r.noOAuth = &app, ""
	return r, nil
}

// ClientFor returns the portal's client. It fails with ErrNoCredentials
// (permanent) for an unknown or inactive portal, a portal with neither a
// webhook URL nor a client_endpoint, an installed portal when this service
// has no application credentials, and an installed portal without stored
// tokens or whose tokens the configured key cannot open (fix the
// configuration or reinstall, then replay). Failing to reach the token
// store is transient.
func (r *RegistryClients) ClientFor(ctx context.Context, memberID string) (*bitrix.Client, error) {
	p, ok := r.reg.Lookup(memberID)
	if !ok || !p.Active {
		return nil, consumer.Permanent(fmt.Errorf("%w %s: unknown or inactive portal", ErrNoCredentials, memberID))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	want := cached{webhook: p.WebhookURL, plan: p.Plan}
	if p.WebhookURL == "" {
		want.endpoint = p.ClientEndpoint
	}
	if c, ok := r.clients[memberID]; ok && c.webhook == want.webhook && c.endpoint == want.endpoint && c.plan == want.plan {
		return c.c, nil
	}
	cfg := bitrix.Config{MemberID: memberID, Rate: bitrix.DefaultRate}
	if p.Plan == "enterprise" {
		cfg.Rate = bitrix.EnterpriseRate
	}
	switch {
	case p.WebhookURL != "":
		cfg.WebhookURL = p.WebhookURL
	case p.ClientEndpoint == "":
		return nil, consumer.Permanent(fmt.Errorf("%w %s: neither a webhook URL nor an app install", ErrNoCredentials, memberID))
	case r.oauth == nil:
		return nil, consumer.Permanent(fmt.Errorf("%w %s: installed as an app, but %s", ErrNoCredentials, memberID, r.noOAuth))
	default:
		if _, _, err := r.oauth.Tokens.Load(ctx, memberID); err != nil {
			switch {
			case errors.Is(err, bitrix.ErrTokenNotFound):
				return nil, consumer.Permanent(fmt.Errorf("%w %s: installed as an app, but no tokens are stored (reinstall the app)", ErrNoCredentials, memberID))
			case errors.Is(err, bitrix.ErrTokenDecrypt):
				return nil, consumer.Permanent(fmt.Errorf("%w %s: %w", ErrNoCredentials, memberID, err))
			}
			return nil, fmt.Errorf("bitrixport: portal %s: %w", memberID, err)
		}
		cfg.OAuth = &bitrix.OAuthConfig{ClientID: r.oauth.ClientID, ClientSecret: r.oauth.ClientSecret,
			MemberID: memberID, Store: r.oauth.Tokens, ClientEndpoint: p.ClientEndpoint}
	}
	c, err := bitrix.New(cfg, r.opts...)
	if err != nil {
		return nil, consumer.Permanent(fmt.Errorf("bitrixport: portal %s: %w", memberID, err))
	}
	want.c = c
	r.clients[memberID] = want
	return c, nil
}

// AppInstalled reports whether memberID is an active portal installed as
// the application (a registry record with a client_endpoint and no webhook
// URL) that this service can call: it has the application's credentials
// and the portal's tokens are stored. Those are the portals event.bind,
// offline events and event.test work for. A token store that cannot be
// read counts as no.
func (r *RegistryClients) AppInstalled(ctx context.Context, memberID string) bool {
	p, ok := r.reg.Lookup(memberID)
	if !ok || !p.Active || p.WebhookURL != "" || p.ClientEndpoint == "" || r.oauth == nil {
		return false
	}
	_, _, err := r.oauth.Tokens.Load(ctx, memberID)
	return err == nil
}

// Forget drops the client kept for memberID, so the next ClientFor builds
// a new one: after a reinstall replaced the portal's tokens, or an
// uninstall, the old client's cached access token must not be used.
func (r *RegistryClients) Forget(memberID string) {
	r.mu.Lock()
	delete(r.clients, memberID)
	r.mu.Unlock()
}

// Static serves one client for every portal; handy in tests and for the
// local stack with one fake portal.
type Static struct{ Client *bitrix.Client }

// ClientFor returns s.Client.
func (s Static) ClientFor(context.Context, string) (*bitrix.Client, error) { return s.Client, nil }

// Kinded carries a bitrix error with its kind for Outcome.error_kind.
type Kinded struct{ Err error }

func (k Kinded) Error() string { return k.Err.Error() }
func (k Kinded) Unwrap() error { return k.Err }

// ErrorKind implements consumer.ErrorKinder: the bitrix error's kind in the
// platform vocabulary (eventbus.ErrorKindOverload for OVERLOAD_LIMIT,
// eventbus.ErrorKindReauthorize, ...), "" for an error that is not from the
// bitrix client (the runtime then assigns its own).
func (k Kinded) ErrorKind() string {
	var e *bitrix.Error
	if errors.As(k.Err, &e) {
		return ErrorKind(e.Kind())
	}
	return ""
}

// ErrorKind names a bitrix.Kind in the Outcome.error_kind vocabulary
// (eventbus.ErrorKinds). An unknown kind is transient, like the errors the
// runtime cannot classify.
func ErrorKind(k bitrix.Kind) string {
	switch k {
	case bitrix.KindPermanent:
		return eventbus.ErrorKindPermanent
	case bitrix.KindTransient:
		return eventbus.ErrorKindTransient
	case bitrix.KindLimiter:
		return eventbus.ErrorKindLimiter
	case bitrix.KindQueryLimit:
		return eventbus.ErrorKindQueryLimit
	case bitrix.KindOverload:
		return eventbus.ErrorKindOverload
	case bitrix.KindOperationLimit:
		return eventbus.ErrorKindOperationLimit
	case bitrix.KindAuth:
		return eventbus.ErrorKindAuth
	case bitrix.KindReauthorize:
		return eventbus.ErrorKindReauthorize
	case bitrix.KindNotFound:
		return eventbus.ErrorKindNotFound
	}
	return eventbus.ErrorKindTransient
}

// Classify maps an error from the bitrix client onto the consumer
// vocabulary:
//
//   - permanent, auth and reauthorize kinds → consumer.Permanent (dead
//     letter now; replay after fixing the portal's credentials), except an
//     expired or invalid access token: the client already refreshed it
//     (up to twice) during the call, so one that is still refused lost a
//     race with other rotations, and the next attempt, with the token then
//     stored, succeeds — it stays retryable. A token that cannot be
//     refreshed at all surfaces as reauthorize;
//   - the portal not answering (a 5xx, an HTML error page with a 5xx, no
//     answer at all: refused, reset, timed out) and its limits (503
//     QUERY_LIMIT_EXCEEDED past the client's own waiting, 503
//     OVERLOAD_LIMIT, 429 OPERATION_TIME_LIMIT) →
//     consumer.UnavailableFor("bitrix24", portal): none is the event's
//     fault, so the message waits without spending a delivery; the portal
//     is the error's (its member_id), so only that portal's messages wait
//     and the consumer goes on with the other portals';
//   - the shared rate limiter's wait failing before any request was sent
//     (bitrix.KindLimiter) → consumer.Unavailable("nats"): the limiter
//     is NATS KV, which every portal's calls need, so the consumer pauses;
//   - everything else (not_found, a transient answer with a 2xx/4xx
//     status) stays retryable with the Spec's backoff. Callers that treat
//     not_found specially check errors.Is(err, bitrix.KindNotFound) before
//     calling Classify.
//
// Every bitrix error is wrapped in Kinded so its kind reaches the outcome
// (an unavailable portal's outcome keeps "overload", "query_limit", ...).
// Other errors are returned unchanged; nil stays nil.
func Classify(err error) error {
	var e *bitrix.Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	k := Kinded{Err: err}
	switch e.Kind() {
	case bitrix.KindAuth:
		if e.Code == bitrix.CodeExpiredToken || e.Code == bitrix.CodeInvalidToken {
			return k
		}
		return consumer.Permanent(k)
	case bitrix.KindPermanent, bitrix.KindReauthorize:
		return consumer.Permanent(k)
	case bitrix.KindQueryLimit, bitrix.KindOverload, bitrix.KindOperationLimit:
		return consumer.UnavailableFor(consumer.DependencyBitrix24, e.Portal, k)
	case bitrix.KindLimiter:
		// The shared limiter (NATS KV) failed, not the portal: every
		// portal's calls need it, so the consumer pauses as a whole. Held
		// for the portal instead, a limiter that fails during a JetStream
		// leader change parked the portal's whole backlog behind one probe
		// (docs/benchmarks.md, the chaos runs).
		return consumer.Unavailable(consumer.DependencyNATS, k)
	case bitrix.KindTransient:
		if e.Status == 0 || e.Status >= 500 {
			return consumer.UnavailableFor(consumer.DependencyBitrix24, e.Portal, k)
		}
	}
	return k
}
