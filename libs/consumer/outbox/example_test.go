package outbox_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
)

// A service that mirrors events and publishes what changed builds its
// runtime and relay in New, registers its handlers on the runtime, and in
// Run, after migrating its schema, runs both until ctx ends. Tracer and
// meter providers are optional (nil: the global ones).
func ExampleNewRuntime() {
	var (
		nc   *nats.Conn    // the host's connection
		pool *pgxpool.Pool // the service's database, with outbox.In("svc").Migrate run
		ctx  = context.Background()
	)
	rt, relay, err := outbox.NewRuntime(nc, pool, outbox.In("svc"), outbox.RuntimeOptions{
		Logger: slog.Default(), DrainTimeout: consumer.DefaultDrainTimeout,
	})
	if err != nil {
		return
	}
	h := consumer.HandlerFunc[*eventsv1.Envelope](func(ctx context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
		// Write the mirror and outbox.In("svc").Add(ctx, tx, &mark, change) in one
		// transaction; relay.FlushAfterCommit(ctx, mark) after the commit publishes at once.
		return nil
	})
	spec := consumer.Spec{Durable: "svc", FilterSubjects: eventbus.RawEventFilter("ONCRMDEALUPDATE")}
	if err := consumer.Register(rt, spec, consumer.DecodeEnvelope, h); err != nil {
		return
	}
	// Waits for the streams, then consumes and publishes until ctx ends.
	_ = outbox.RunWithRuntime(ctx, rt, relay, time.Second)
}
