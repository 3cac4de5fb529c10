// Package ingress is the b24hub ingress service: it receives Bitrix24 event
// POSTs, authenticates them against the portal registry, removes secrets and
// publishes each event to JetStream, answering 200 only after the PubAck.
//
// The service is embedded by the local stack (services/devstack) and run on
// its own by cmd/ingress.
package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/ingress/internal/handler"
	"github.com/b24hub/b24hub/services/ingress/internal/onprem"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Deps are what the ingress needs from its host process.
type Deps struct {
	// NC is the NATS connection (required).
	NC *nats.Conn
	// Portals authenticates events (required).
	Portals *portals.Registry
	// Logger is required.
	Logger *slog.Logger
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// TracerProvider defaults to the global one.
	TracerProvider trace.TracerProvider
	// MeterProvider defaults to the global one.
	MeterProvider metric.MeterProvider
	// Publisher stores each accepted event. It defaults to an
	// eventbus.Publisher on NC (pipelined and coalesced) that gives up after
	// PublishTimeout; tools/bench sets another to compare publish paths
	// under the same handler. Another must bound its wait itself.
	Publisher Publisher
}

// Publisher stores one event and returns once JetStream confirmed it, as
// *eventbus.Publisher does.
type Publisher = handler.Publisher

// Service is a running ingress.
type Service struct {
	cfg    Config
	deps   Deps
	js     jetstream.JetStream
	echo   *echo.Echo
	health *telemetry.Health
	ln     net.Listener
}

// New builds the ingress and binds its listener, so Addr is known before Run.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.NC == nil || deps.Portals == nil || deps.Logger == nil {
		return nil, errors.New("ingress: NC, Portals and Logger are required")
	}
	if deps.TracerProvider == nil {
		deps.TracerProvider = otel.GetTracerProvider()
	}
	if deps.MeterProvider == nil {
		deps.MeterProvider = otel.GetMeterProvider()
	}
	js, err := jetstream.New(deps.NC)
	if err != nil {
		return nil, fmt.Errorf("ingress: jetstream: %w", err)
	}
	s := &Service{cfg: cfg, deps: deps, js: js}
	var inst handler.Installer
	if cfg.AcceptInstalls {
		inst = natsInstaller{nc: deps.NC}
	}
	lim := b24event.DefaultLimits()
	lim.MaxBodyBytes = cfg.MaxBodyBytes
	pub := deps.Publisher
	if pub == nil {
		pub = eventbus.NewPublisher(js, eventbus.WithTracerProvider(deps.TracerProvider), eventbus.WithConfirmTimeout(cfg.PublishTimeout))
	}
	meter := deps.MeterProvider.Meter("github.com/b24hub/b24hub/services/ingress")
	if err := s.observeEventsStream(meter); err != nil {
		return nil, err
	}
	h, err := handler.New(handler.Config{Limits: lim, InstallTimeout: cfg.PublishTimeout, TracerProvider: deps.TracerProvider,
		PortalBudget: cfg.portalBudget()},
		deps.Portals, pub, inst, deps.Logger, meter)
	if err != nil {
		return nil, err
	}
	// On-premise installations (the b24hub.forwarder module) share the
	// publisher, so their events take the same path to the same stream.
	op, err := onprem.New(onprem.Config{MaxBodyBytes: cfg.MaxBodyBytes, TracerProvider: deps.TracerProvider, Budgets: h.Budgets()},
		deps.Portals, pub, deps.Logger, meter)
	if err != nil {
		return nil, err
	}
	s.health = telemetry.NewHealth(map[string]telemetry.ReadyFunc{"jetstream": s.Ready})

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = clientIP(cfg.TrustedProxies)
	h.Register(e)
	op.Register(e)
	mux := http.NewServeMux()
	s.health.Register(mux, deps.Metrics)
	e.GET("/healthz", echo.WrapHandler(mux))
	e.GET("/readyz", echo.WrapHandler(mux))
	if deps.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(mux))
	}
	// After every route is registered: the histogram's attribute sets are
	// made for the routes there are.
	mw, err := requestDuration(e, meter)
	if err != nil {
		return nil, err
	}
	e.Use(mw)
	s.echo = e

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ingress: listen %s: %w", cfg.Addr, err)
	}
	s.ln = ln
	return s, nil
}

// clientIP is how a request's client address is found: the peer address,
// or, behind trusted proxies, the first untrusted address of
// X-Forwarded-For.
func clientIP(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(netipToIPNet(p)))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

func netipToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Addr is the bound listen address.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Ready reports whether JetStream answers and the raw event stream exists.
func (s *Service) Ready(ctx context.Context) error {
	return eventbus.CheckStreams(ctx, s.js, eventbus.StreamEvents)
}

// Run serves until ctx ends, then stops taking new requests (readiness
// fails first) and finishes the ones in flight within ShutdownTimeout.
func (s *Service) Run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	s.deps.Logger.InfoContext(ctx, "ingress listening", "addr", s.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("ingress: serve: %w", err)
	case <-ctx.Done():
	}
	s.health.Drain()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("ingress: shutdown: %w", err)
	}
	return nil
}

// natsInstaller asks the subscriptions service to verify an install over
// core NATS request/reply (nothing is stored, since the body has tokens).
type natsInstaller struct{ nc *nats.Conn }

func (n natsInstaller) Install(ctx context.Context, contentType string, body []byte) (bool, error) {
	req, err := json.Marshal(eventbus.InstallRequest{ContentType: contentType, Body: body})
	if err != nil {
		return false, err
	}
	msg, err := n.nc.RequestWithContext(ctx, eventbus.ControlInstall, req)
	if err != nil {
		return false, fmt.Errorf("ingress: install verification: %w", err)
	}
	var rep eventbus.InstallReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return false, fmt.Errorf("ingress: install verification reply: %w", err)
	}
	if rep.Busy {
		// Not a refusal: like an unavailable verifier, a known portal whose
		// application token matched is accepted on it.
		return false, errVerifierBusy
	}
	return rep.Accepted, nil
}

// errVerifierBusy is an install the verifier had no free slot for.
var errVerifierBusy = errors.New("ingress: install verification busy")
