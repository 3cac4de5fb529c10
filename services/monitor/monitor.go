// Package monitor is b24hub's delivery ledger, alerting, dashboard and
// replay service. It records every raw event and every consumer outcome
// and dead letter in PostgreSQL, raises alerts when events stop or fail,
// serves a JSON API and an embedded dashboard, and republishes events on
// request.
//
// Embed it with New and Run (the local stack does), or run cmd/monitor.
// Its durable JetStream consumers are public API: "monitor-ledger" on
// B24_EVENTS, "monitor-outcomes" on B24_OUTCOMES and "monitor-dead" on
// B24_DEAD (see internal/ingest). The streams themselves are provisioned
// by their owner (eventbus.Provision), never by the monitor.
package monitor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/b24hub/b24hub/services/monitor/internal/session"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/monitor/internal/alert"
	"github.com/b24hub/b24hub/services/monitor/internal/api"
	"github.com/b24hub/b24hub/services/monitor/internal/audit"
	"github.com/b24hub/b24hub/services/monitor/internal/ingest"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/b24hub/b24hub/services/monitor/internal/replay"
	"github.com/b24hub/b24hub/services/monitor/internal/schema"
	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
)

// Durable consumer names (public API: renaming one re-reads its stream).
const (
	DurableLedger   = ingest.DurableLedger
	DurableOutcomes = ingest.DurableOutcomes
	DurableDead     = ingest.DurableDead
)

// Deps are the monitor's connections and hooks.
type Deps struct {
	// NC is the NATS connection; required. The monitor does not close it.
	NC *nats.Conn
	// Pool is the PostgreSQL pool; required. The monitor does not close it.
	Pool *pgxpool.Pool
	// Logger; optional, default discards.
	Logger *slog.Logger
	// Metrics is served at /metrics when set (telemetry.MetricsHandler).
	Metrics http.Handler
	// Now is the clock of the alert evaluator, the health view and
	// replays; optional, default time.Now. Tests inject it to simulate
	// business hours.
	Now func() time.Time
	// MeterProvider receives the monitor's metrics (alert gauges, ingest
	// counters); optional, default the global provider.
	MeterProvider metric.MeterProvider
	// TracerProvider for HTTP and replay spans; optional, default global.
	TracerProvider trace.TracerProvider
	// HTTPClient is used by the webhook sinks; optional, default a client
	// with no global timeout (each sink has its own).
	HTTPClient *http.Client
	// Portals is the live portal registry the alert rules watch (the local
	// stack passes the one it shares with the ingress); optional: when nil
	// the monitor watches Config.PortalsFile and the B24_PORTALS bucket
	// itself, and evaluates no rule until the bucket is loaded.
	Portals PortalRegistry
}

// Service is a configured monitor; Run starts it.
type Service struct {
	cfg       Config
	deps      Deps
	log       *slog.Logger
	token     string
	js        jetstream.JetStream
	store     *ledger.Store
	engine    *alert.Engine
	health    *telemetry.Health
	ln        net.Listener
	srv       *http.Server
	consumers []*ingest.Consumer
	migrated  atomic.Bool
	own       *ownPortals // nil when Deps.Portals is set
	portals   atomic.Bool // the registry is loaded
	ingested  metric.Int64Counter
	failures  metric.Int64Counter
}

// New validates cfg, loads the alert rules, binds cfg.Addr and wires the
// monitor. It does no I/O to NATS or PostgreSQL; Run does. It returns an
// error for an invalid configuration, an unreadable or invalid rules file,
// or an address that cannot be bound.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.NC == nil || deps.Pool == nil {
		return nil, errors.New("monitor: Deps.NC and Deps.Pool are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.MeterProvider == nil {
		deps.MeterProvider = otel.GetMeterProvider()
	}
	if deps.TracerProvider == nil {
		deps.TracerProvider = otel.GetTracerProvider()
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{}
	}
	s := &Service{cfg: cfg, deps: deps, log: deps.Logger.With("service", "monitor"), token: cfg.Token}
	if s.token == "" {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("monitor: generate token: %w", err)
		}
		s.token = hex.EncodeToString(b[:])
	}
	rules, err := alert.LoadRules(cfg.AlertRulesFile, os.Getenv) // url_env reads the process environment
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(deps.NC)
	if err != nil {
		return nil, fmt.Errorf("monitor: jetstream: %w", err)
	}
	s.js = js
	s.store = ledger.NewStore(deps.Pool)
	meter := deps.MeterProvider.Meter("github.com/b24hub/b24hub/services/monitor")
	if s.ingested, err = meter.Int64Counter("monitor_ingest_messages",
		metric.WithDescription("Messages written to the ledger, by durable consumer")); err != nil {
		return nil, err
	}
	if s.failures, err = meter.Int64Counter("monitor_ingest_write_failures",
		metric.WithDescription("Failed ledger batch writes (retried), by durable consumer")); err != nil {
		return nil, err
	}

	var sinks []alert.Sink
	for _, sc := range rules.Sinks {
		sink, err := alert.NewSink(sc, deps.HTTPClient, s.log)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, sink)
	}
	if deps.Portals == nil {
		if s.own, err = newOwnPortals(cfg.PortalsFile); err != nil {
			return nil, err
		}
		s.deps.Portals = s.own.reg
	} else {
		s.portals.Store(true)
	}
	live := livePortals{reg: s.deps.Portals}
	alerts := alert.NewStore(deps.Pool)
	auditor := audit.New(audit.Config{JS: js, Ledger: s.store, Self: ingest.DurableLedger, Now: deps.Now})
	s.engine, err = alert.NewEngine(alert.EngineConfig{Rules: rules, Src: s.store, State: alerts, Sinks: sinks,
		Lease: alert.NewPGLease(deps.Pool, alert.LeaseKey), Portals: live, Ages: auditor, Now: deps.Now, Meter: meter, Log: s.log})
	if err != nil {
		return nil, err
	}

	opts := ingest.Options{BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait,
		Tracer: deps.TracerProvider.Tracer("github.com/b24hub/b24hub/services/monitor/internal/ingest"),
		OnWrite: func(d string, n int, _ time.Duration) {
			s.ingested.Add(context.Background(), int64(n), metric.WithAttributes(attribute.String("consumer", d)))
		},
		OnFailure: func(d string, _ error) {
			s.failures.Add(context.Background(), 1, metric.WithAttributes(attribute.String("consumer", d)))
		}}
	s.consumers = []*ingest.Consumer{
		ingest.NewConsumer(js, ingest.LedgerSpec, ingest.EventWriter(s.store, s.log), opts, s.log),
		ingest.NewConsumer(js, ingest.OutcomesSpec, ingest.OutcomeWriter(s.store, s.log), opts, s.log),
		ingest.NewConsumer(js, ingest.DeadSpec, ingest.DeadWriter(s.store, s.log), opts, s.log),
	}

	pub := eventbus.NewPublisher(js, eventbus.WithTracerProvider(deps.TracerProvider))
	apiSrv := api.New(api.Config{Ledger: s.store, Alerts: alerts, Rules: rules, Auth: api.NewAuth(s.token, session.New(deps.Pool, deps.Now)),
		Replayer: replay.New(s.store, pub, cfg.ReplayMax, deps.Now).WithDestinations(replay.NATSDestinations{NC: deps.NC}),
		Auditor:  auditor, TraceURLTemplate: cfg.TraceURLTemplate, Watched: live.Watched,
		Now: deps.Now, Log: s.log})

	s.health = telemetry.NewHealth(map[string]telemetry.ReadyFunc{"monitor": s.Ready})
	mux := http.NewServeMux()
	s.health.Register(mux, deps.Metrics)
	mux.Handle("/", apiSrv.Handler())
	handler := otelhttp.NewHandler(mux, "monitor", otelhttp.WithTracerProvider(deps.TracerProvider),
		otelhttp.WithMeterProvider(deps.MeterProvider),
		otelhttp.WithFilter(func(r *http.Request) bool {
			return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && r.URL.Path != "/metrics" && !strings.HasPrefix(r.URL.Path, "/static/")
		}))
	s.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("monitor: listen %s: %w", cfg.Addr, err)
	}
	return s, nil
}

// Addr returns the address the HTTP server is bound to.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Token returns the API token in use (configured or generated).
func (s *Service) Token() string { return s.token }

// Ready reports whether the monitor can do its work: schema migrated,
// PostgreSQL answering, NATS connected and the three streams present.
func (s *Service) Ready(ctx context.Context) error {
	if !s.migrated.Load() {
		return errors.New("monitor: schema not migrated yet")
	}
	if !s.portals.Load() {
		return errors.New("monitor: portals registry not loaded yet (waiting for the " + eventbus.BucketPortals + " bucket)")
	}
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("monitor: postgres: %w", err)
	}
	if !s.deps.NC.IsConnected() {
		return errors.New("monitor: nats not connected")
	}
	return eventbus.CheckStreams(ctx, s.js, eventbus.StreamEvents, eventbus.StreamOutcomes, eventbus.StreamDead)
}

// retry runs f until it succeeds or ctx ends, backing off (from 200 ms,
// doubling, jittered) to max between attempts and logging every failure
// after the first few quietly.
func (s *Service) retry(ctx context.Context, what string, max time.Duration, f func(context.Context) error) error {
	b := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(max), backoff.WithMaxElapsedTime(0)), ctx)
	attempt := 0
	err := backoff.Retry(func() error {
		attempt++
		err := f(ctx)
		if err != nil && ctx.Err() == nil && (attempt == 1 || attempt%10 == 0) {
			s.log.WarnContext(ctx, "monitor "+what+" failed, retrying", "error", err, "attempt", attempt)
		}
		return err
	}, b)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Run serves HTTP on Addr at once, migrates the "monitor" schema (waiting
// for PostgreSQL if it is down), creates or updates the durable consumers
// and runs them, the alert evaluator and retention until ctx ends. Then it
// marks itself draining, finishes the batches in flight, acknowledges them
// and stops the HTTP server. It returns nil after a clean shutdown.
func (s *Service) Run(ctx context.Context) error {
	s.log.InfoContext(ctx, "monitor starting", "config", s.cfg.String(), "addr", s.Addr())
	g, gctx := errgroup.WithContext(ctx)
	serveErr := make(chan error, 1)
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
		close(serveErr)
	}()
	g.Go(func() error {
		select {
		case err, ok := <-serveErr:
			if ok {
				return fmt.Errorf("monitor: http: %w", err)
			}
			return nil
		case <-gctx.Done():
			s.health.Drain()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
			defer cancel()
			return s.srv.Shutdown(sctx)
		}
	})
	g.Go(func() error {
		if err := s.retry(gctx, "migration", 5*time.Second, func(ctx context.Context) error { return schema.Migrate(ctx, s.deps.Pool) }); err != nil {
			return nil // shutting down
		}
		s.migrated.Store(true)
		s.maintain(gctx)
		sub, sctx := errgroup.WithContext(gctx)
		for _, c := range s.consumers {
			sub.Go(func() error { return c.Run(sctx) })
		}
		sub.Go(func() error {
			if s.own != nil {
				if err := s.watchOwnPortals(sctx); err != nil {
					return nil // shutting down
				}
				s.portals.Store(true)
			}
			return s.engine.Run(sctx)
		})
		sub.Go(func() error {
			t := time.NewTicker(s.cfg.MaintainEvery)
			defer t.Stop()
			for {
				select {
				case <-sctx.Done():
					return nil
				case <-t.C:
					s.maintain(sctx)
				}
			}
		})
		return sub.Wait()
	})
	err := g.Wait()
	s.log.InfoContext(context.WithoutCancel(ctx), "monitor stopped", "error", err)
	return err
}

func (s *Service) maintain(ctx context.Context) {
	dropped, err := s.store.MaintainPartitions(ctx, s.deps.Now(), s.cfg.Retention)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "monitor retention failed (will retry)", "error", err)
		}
		return
	}
	if dropped > 0 {
		s.log.InfoContext(ctx, "monitor dropped expired partitions", "partitions", dropped)
	}
}
