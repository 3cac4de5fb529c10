// Package telephony is the telephony service: it mirrors finished
// Bitrix24 calls (ONVOXIMPLANTCALLEND) with their recordings into
// PostgreSQL and publishes domain changes on b24.changes.call.*.
//
// Consumer (the durable name is public API): telephony.
//
// The service is embedded by the local stack and run on its own by
// cmd/telephony.
package telephony

import (
	"context"
	"errors"
	"fmt"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/telephony/internal/recording"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/services/telephony/internal/consumer/callend"
	"github.com/b24hub/b24hub/services/telephony/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Portals gives the REST client of a portal by member_id, built from its
// stored credentials. bitrixport.RegistryClients implements it.
type Portals interface {
	ClientFor(ctx context.Context, memberID string) (*bitrix.Client, error)
}

// Deps are what telephony needs from its host process.
type Deps struct {
	// NC is the NATS connection. Required.
	NC *nats.Conn
	// Pool is the PostgreSQL pool. Required.
	Pool *pgxpool.Pool
	// Logger is required.
	Logger *slog.Logger
	// Portals gives REST clients. Required.
	Portals Portals
	// TracerProvider and MeterProvider default to the global ones.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Service is a telephony instance.
type Service struct {
	cfg   Config
	deps  Deps
	rt    *consumer.Runtime
	relay *outbox.Relay
	recs  *recording.Server
}

// New wires the service; nothing is contacted until Run.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.NC == nil || deps.Pool == nil || deps.Logger == nil || deps.Portals == nil {
		return nil, errors.New("telephony: NC, Pool, Logger and Portals are required")
	}
	rt, relay, err := outbox.NewRuntime(deps.NC, deps.Pool, store.Outbox, outbox.RuntimeOptions{
		Logger: deps.Logger, DrainTimeout: cfg.DrainTimeout,
		TracerProvider: deps.TracerProvider, MeterProvider: deps.MeterProvider,
	})
	if err != nil {
		return nil, err
	}
	h := callend.New(deps.Portals, store.New(deps.Pool), relay,
		callend.Options{RecordingWait: cfg.RecordingWait, RecordingPoll: cfg.RecordingPoll})
	if err := consumer.Register(rt, cfg.Consumer.Apply(callend.Spec()), consumer.DecodeEnvelope, h); err != nil {
		return nil, err
	}
	recs := recording.New(deps.Pool, deps.Portals, deps.Logger, 10*time.Second)
	return &Service{cfg: cfg, deps: deps, rt: rt, relay: relay, recs: recs}, nil
}

// Run answers recording requests
// (eventbus.ControlRecording), provisions the durable consumer (waiting for
// the streams to exist), then consumes until ctx ends and drains. The
// schema must be migrated (store.Migrate): svcmain does it before Start.
func (s *Service) Run(ctx context.Context) error {
	sub, err := s.recs.Subscribe(ctx, s.deps.NC)
	if err != nil {
		return fmt.Errorf("telephony: subscribe %s: %w", eventbus.ControlRecording, err)
	}
	defer func() { _ = sub.Drain() }()
	return outbox.RunWithRuntime(ctx, s.rt, s.relay, s.cfg.OutboxInterval)
}

// Ready reports whether PostgreSQL answers and the consumer exists.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.deps.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("telephony: postgres: %w", err)
	}
	return s.rt.Ready(ctx)
}
