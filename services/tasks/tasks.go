// Package tasks is the tasks service: it mirrors Bitrix24 tasks with their
// checklists (ONTASKADD/UPDATE/DELETE, ONTASKCOMMENTADD) into PostgreSQL and
// publishes field-level domain changes, checklist changes included, on
// b24.changes.task.*.
//
// Consumer (the durable name is public API): tasks.
//
// The service is embedded by the local stack and run on its own by
// cmd/tasks.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/services/tasks/internal/consumer/taskevents"
	"github.com/b24hub/b24hub/services/tasks/internal/store"
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

// Deps are what tasks needs from its host process.
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

// Service is a tasks instance.
type Service struct {
	cfg   Config
	deps  Deps
	rt    *consumer.Runtime
	relay *outbox.Relay
}

// New wires the service; nothing is contacted until Run.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.NC == nil || deps.Pool == nil || deps.Logger == nil || deps.Portals == nil {
		return nil, errors.New("tasks: NC, Pool, Logger and Portals are required")
	}
	rt, relay, err := outbox.NewRuntime(deps.NC, deps.Pool, store.Outbox, outbox.RuntimeOptions{
		Logger: deps.Logger, DrainTimeout: cfg.DrainTimeout,
		TracerProvider: deps.TracerProvider, MeterProvider: deps.MeterProvider,
	})
	if err != nil {
		return nil, err
	}
	h := taskevents.New(deps.Portals, store.New(deps.Pool), relay)
	if err := consumer.RegisterBatch(rt, cfg.Consumer.Apply(taskevents.Spec()), consumer.DecodeEnvelope, h); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, deps: deps, rt: rt, relay: relay}, nil
}

// Run provisions the durable consumer (waiting for the streams to exist),
// then consumes until ctx ends and drains. The schema must be migrated
// (store.Migrate): svcmain does it before Start.
func (s *Service) Run(ctx context.Context) error {
	return outbox.RunWithRuntime(ctx, s.rt, s.relay, s.cfg.OutboxInterval)
}

// Ready reports whether PostgreSQL answers and the consumer exists.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.deps.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("tasks: postgres: %w", err)
	}
	return s.rt.Ready(ctx)
}
