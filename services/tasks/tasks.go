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
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/tasks/internal/consumer/taskevents"
	"github.com/b24hub/b24hub/services/tasks/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
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
	opts := []consumer.Option{consumer.WithLogger(deps.Logger), consumer.WithDrainTimeout(cfg.DrainTimeout)}
	var pubOpts []eventbus.PublisherOption
	if deps.TracerProvider != nil {
		opts = append(opts, consumer.WithTracerProvider(deps.TracerProvider))
		pubOpts = append(pubOpts, eventbus.WithTracerProvider(deps.TracerProvider))
	}
	if deps.MeterProvider != nil {
		opts = append(opts, consumer.WithMeterProvider(deps.MeterProvider))
	}
	rt, err := consumer.New(deps.NC, opts...)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(deps.NC)
	if err != nil {
		return nil, err
	}
	relay := outbox.NewRelay(store.Outbox, deps.Pool, eventbus.NewPublisher(js, pubOpts...), deps.Logger)
	h := taskevents.New(deps.Portals, store.New(deps.Pool), relay)
	if err := consumer.RegisterBatch(rt, cfg.Consumer.Apply(taskevents.Spec()), consumer.DecodeEnvelope, h); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, deps: deps, rt: rt, relay: relay}, nil
}

// Run migrates the schema, provisions the durable consumer (waiting for the
// streams to exist), then consumes until ctx ends and drains.
func (s *Service) Run(ctx context.Context) error {
	if err := store.Migrate(ctx, s.deps.Pool); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	for {
		err := s.rt.Provision(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		s.deps.Logger.WarnContext(ctx, "streams missing; waiting for `b24ctl topology apply` or the local stack")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.rt.Run(gctx) })
	g.Go(func() error { return s.relay.Run(gctx, s.cfg.OutboxInterval) })
	return g.Wait()
}

// Ready reports whether PostgreSQL answers and the consumer exists.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.deps.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("tasks: postgres: %w", err)
	}
	return s.rt.Ready(ctx)
}
