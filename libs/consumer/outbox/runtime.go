package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
)

// RuntimeOptions configures [NewRuntime]: the runtime options every service
// with an outbox sets, and what the relay shares with the runtime.
type RuntimeOptions struct {
	// Logger is required; the runtime and the relay log to it.
	Logger *slog.Logger
	// DrainTimeout is required and must be positive: it is passed to
	// consumer.WithDrainTimeout as it is, so a service's Config keeps
	// owning its default (consumer.DefaultDrainTimeout in every service).
	DrainTimeout time.Duration
	// TracerProvider traces the runtime and the relay's publishes, so a
	// published change is traced like the runtime's own outcomes. Optional:
	// nil means the global provider.
	TracerProvider trace.TracerProvider
	// MeterProvider records the runtime's metrics. Optional: nil means the
	// global provider.
	MeterProvider metric.MeterProvider
}

// NewRuntime returns the two halves of a consumer whose handlers publish
// through the outbox table: a consumer runtime on nc, to register the
// handlers on, and a Relay that publishes the table's rows on nc with the
// same tracer provider (hand it to the handlers that want to flush right
// after their commit). Nothing is contacted; run both with
// [RunWithRuntime]. It returns an error when nc, pool or o.Logger is nil or
// a runtime option is invalid.
func NewRuntime(nc *nats.Conn, pool *pgxpool.Pool, table Table, o RuntimeOptions) (*consumer.Runtime, *Relay, error) {
	if nc == nil || pool == nil || o.Logger == nil {
		return nil, nil, errors.New("outbox: connection, pool and logger are required")
	}
	rt, err := consumer.New(nc, consumer.WithLogger(o.Logger), consumer.WithDrainTimeout(o.DrainTimeout),
		consumer.WithTelemetry(o.TracerProvider, o.MeterProvider))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: jetstream: %w", err)
	}
	// A publish whose answer never comes (sent to a stream leader just
	// cut off from its cluster) must not hold the claimed rows, and the
	// relay loop with them, for ever: unconfirmed rows stay and the next
	// flush publishes them again, de-duplicated by their message ids.
	pubOpts := []eventbus.PublisherOption{eventbus.WithConfirmTimeout(relayConfirmTimeout)}
	if o.TracerProvider != nil {
		pubOpts = append(pubOpts, eventbus.WithTracerProvider(o.TracerProvider))
	}
	return rt, NewRelay(table, pool, eventbus.NewPublisher(js, pubOpts...), o.Logger), nil
}

// relayConfirmTimeout bounds each relay publish.
const relayConfirmTimeout = 5 * time.Second

// RunWithRuntime runs a consumer and its outbox relay the way a service
// does: it provisions rt's durable consumers, waiting while the streams are
// missing ([consumer.Runtime.ProvisionWhenStreamsExist]), then runs rt and
// relay (flushing every interval) until ctx ends or either fails. The relay
// starts only once the consumers exist, and flushes one last time after ctx
// ends. It returns when both have stopped: nil after a clean drain, ctx.Err()
// if ctx ended while waiting for the streams, otherwise the first error.
//
// It migrates nothing: the table is created by whoever migrates the
// service's schema, once per start — svcmain at start and `<svc> migrate`,
// from the declared migrations postgres.WithComponents(own, Component).
func RunWithRuntime(ctx context.Context, rt *consumer.Runtime, relay *Relay, every time.Duration) error {
	if err := rt.ProvisionWhenStreamsExist(ctx); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rt.Run(gctx) })
	g.Go(func() error { return relay.Run(gctx, every) })
	return g.Wait()
}
