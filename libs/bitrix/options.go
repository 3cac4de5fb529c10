package bitrix

import (
	"context"
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

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	idempotent *bool
}

// Idempotent declares that repeating the call after an ambiguous failure is
// harmless (or not), overriding the read/write guess made from the method
// name.
func Idempotent(yes bool) CallOption { return func(c *callOptions) { c.idempotent = &yes } }
