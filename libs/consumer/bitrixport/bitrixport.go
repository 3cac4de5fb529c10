// Package bitrixport connects consumers to Bitrix24: a source of REST
// clients per portal built from the portal registry (stored credentials,
// never an event's own token), and the mapping of the REST client's error
// kinds onto the consumer runtime's error vocabulary, so that
// OVERLOAD_LIMIT or a rejected refresh token shows up in Outcome.error_kind.
package bitrixport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/consumer"
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

// RegistryClients builds one bitrix.Client per portal from the registry's
// incoming-webhook URL and rate plan, and keeps it (so its rate limiter and
// method pauses persist). A changed webhook URL or plan builds a new client.
type RegistryClients struct {
	reg  Lookup
	opts []bitrix.Option

	mu      sync.Mutex
	clients map[string]cached
}

type cached struct {
	webhook, plan string
	c             *bitrix.Client
}

// NewRegistryClients returns Clients backed by reg; opts are passed to every
// bitrix.New (limiter, logger, tracer...).
func NewRegistryClients(reg Lookup, opts ...bitrix.Option) *RegistryClients {
	return &RegistryClients{reg: reg, opts: opts, clients: map[string]cached{}}
}

// ClientFor returns the portal's client. It fails with ErrNoCredentials
// (permanent) for an unknown or inactive portal or one without a webhook URL
// (OAuth portals are not supported here yet).
func (r *RegistryClients) ClientFor(_ context.Context, memberID string) (*bitrix.Client, error) {
	p, ok := r.reg.Lookup(memberID)
	if !ok || !p.Active || p.WebhookURL == "" {
		return nil, consumer.Permanent(fmt.Errorf("%w %s", ErrNoCredentials, memberID))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[memberID]; ok && c.webhook == p.WebhookURL && c.plan == p.Plan {
		return c.c, nil
	}
	rate := bitrix.DefaultRate
	if p.Plan == "enterprise" {
		rate = bitrix.EnterpriseRate
	}
	c, err := bitrix.New(bitrix.Config{WebhookURL: p.WebhookURL, MemberID: memberID, Rate: rate}, r.opts...)
	if err != nil {
		return nil, consumer.Permanent(fmt.Errorf("bitrixport: portal %s: %w", memberID, err))
	}
	r.clients[memberID] = cached{webhook: p.WebhookURL, plan: p.Plan, c: c}
	return c, nil
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

// ErrorKind implements consumer.ErrorKinder with the bitrix kind name
// (overload, reauthorize, query_limit, ...).
func (k Kinded) ErrorKind() string {
	var e *bitrix.Error
	if errors.As(k.Err, &e) {
		return e.Kind().String()
	}
	return ""
}

// Classify maps an error from the bitrix client onto the consumer
// vocabulary:
//
//   - permanent, auth and reauthorize kinds → consumer.Permanent (dead
//     letter now; replay after fixing the portal's credentials);
//   - operation_limit → consumer.RetryAfter the method's reset time;
//   - everything else (transient, query_limit, overload, not_found) stays
//     retryable with the Spec's backoff. Callers that treat not_found
//     specially check errors.Is(err, bitrix.KindNotFound) before calling
//     Classify.
//
// Every bitrix error is wrapped in Kinded so its kind reaches the outcome.
// Other errors are returned unchanged; nil stays nil.
func Classify(err error) error {
	var e *bitrix.Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	k := Kinded{Err: err}
	switch e.Kind() {
	case bitrix.KindPermanent, bitrix.KindAuth, bitrix.KindReauthorize:
		return consumer.Permanent(k)
	case bitrix.KindOperationLimit:
		if d := bitrix.RetryAfter(err, time.Now()); d > 0 {
			return consumer.RetryAfter(d, k)
		}
	}
	return k
}
