package bitrix

import (
	"context"
	"github.com/b24hub/b24hub/libs/bitrix/allowlist"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Option tunes a Client beyond its Config: collaborators rather than data.
type Option func(*options)

type options struct {
	http     *http.Client
	limiter  Limiter
	clock    Clock
	log      *slog.Logger
	tp       trace.TracerProvider
	mp       metric.MeterProvider
	onRename func(ctx context.Context, oldDomain, newDomain string)
	hosts    *allowlist.List
}

// WithHTTPClient sets the HTTP client (default: a client with the
// Config.RequestTimeout). The Client copies it and disables automatic
// redirects, because a 302 must be re-POSTed, never turned into a GET (§4.1).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.http = hc } }

// WithLimiter shares a limiter between clients. Default: a LocalLimiter
// private to this Client. Use one KVLimiter per process for all clients of
// all replicas.
func WithLimiter(l Limiter) Option { return func(o *options) { o.limiter = l } }

// WithClock replaces the wall clock (tests, simulations).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger sets the slog logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithTracerProvider sets the tracer provider (default: the global one).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tp = tp } }

// WithMeterProvider sets the meter provider (default: the global one).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.mp = mp } }

// WithRenameHook is called once when the portal answers 302 to a new domain
// (§4.1), so the caller can store the new domain. The client itself already
// uses the new location for later calls.
func WithRenameHook(f func(ctx context.Context, oldDomain, newDomain string)) Option {
	return func(o *options) { o.onRename = f }
}

// WithAllowedHosts sets the hosts a redirect may lead to besides the
// portal's own (same scheme and host): Bitrix24 cloud domains over https,
// plus the list's configured on-premise hosts. Default: cloud domains only.
// A redirect anywhere else is refused as a permanent error and the new
// endpoint is not saved, so a hostile or compromised portal cannot move its
// calls, and the tokens they carry, to another host or to plain http.
func WithAllowedHosts(l *allowlist.List) Option { return func(o *options) { o.hosts = l } }

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	idempotent *bool
}

// Idempotent declares that repeating the call after an ambiguous failure is
// harmless (or not), overriding the read/write guess made from the method
// name.
func Idempotent(yes bool) CallOption { return func(c *callOptions) { c.idempotent = &yes } }
