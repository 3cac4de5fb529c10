// Package dealsync is the deal-sync service: it mirrors Bitrix24 deals into
// PostgreSQL and publishes field-level domain changes, and it writes deal
// updates requested by external systems without ever echoing them back.
//
// Consumers (durable names are public API):
//
//	deal-sync           ONCRMDEALADD/UPDATE/DELETE/MOVETOCATEGORY → mirror + b24.changes.deal.<member>.<id>
//	deal-sync-commands  b24.commands.deal.<member>.update         → crm.deal.update with stored credentials
//
// The service is embedded by the local stack and run on its own by
// cmd/deal-sync.
package dealsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealcommands"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealevents"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Portals gives the REST client of a portal by member_id, built from its
// stored credentials. bitrixport.RegistryClients implements it over the
// portal registry.
type Portals interface {
	ClientFor(ctx context.Context, memberID string) (*bitrix.Client, error)
}

// Deps are what deal-sync needs from its host process.
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

// Service is a deal-sync instance.
type Service struct {
	cfg   Config
	deps  Deps
	rt    *consumer.Runtime
	relay *outbox.Relay
}

// New wires the service; nothing is contacted until Run. It fails when a
// required dependency is missing or a consumer definition is invalid.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.NC == nil || deps.Pool == nil || deps.Logger == nil || deps.Portals == nil {
		return nil, errors.New("dealsync: NC, Pool, Logger and Portals are required")
	}
	rt, relay, err := outbox.NewRuntime(deps.NC, deps.Pool, store.Outbox, outbox.RuntimeOptions{
		Logger: deps.Logger, DrainTimeout: cfg.DrainTimeout,
		TracerProvider: deps.TracerProvider, MeterProvider: deps.MeterProvider,
	})
	if err != nil {
		return nil, err
	}
	st := store.New(deps.Pool)
	events := dealevents.New(deps.Portals, st, relay, dealevents.Options{
		SyncLockField: cfg.SyncLockField, SyncLockClearValue: cfg.SyncLockClearValue,
		VolatileFields: cfg.VolatileFields, EchoTTL: cfg.EchoTTL,
	}, deps.Logger)
	if err := consumer.RegisterBatch(rt, cfg.Consumer.Apply(dealevents.Spec()), consumer.DecodeEnvelope, events); err != nil {
		return nil, err
	}
	commands := dealcommands.New(deps.Portals, st, deps.Logger)
	if err := consumer.Register(rt, cfg.Commands.Apply(dealcommands.Spec()), consumer.DecodeCommand, commands); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, deps: deps, rt: rt, relay: relay}, nil
}

// Specs returns the service's consumer definitions (defaults applied).
func (s *Service) Specs() []consumer.Spec { return s.rt.Specs() }

// Run provisions the durable consumers (waiting for the streams, which
// eventbus.Provision owns, to exist), then consumes until ctx ends and
// drains. It returns nil after a clean shutdown. The schema must be
// migrated (store.Migrate): svcmain does it before Start.
func (s *Service) Run(ctx context.Context) error {
	return outbox.RunWithRuntime(ctx, s.rt, s.relay, s.cfg.OutboxInterval)
}

// Ready reports whether PostgreSQL answers and the consumers exist.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.deps.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("dealsync: postgres: %w", err)
	}
	return s.rt.Ready(ctx)
}
