package outbox_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// warnings is a slog.Handler that hands every record at Warn or above to a
// channel, so a test can act when the runtime says it is waiting.
type warnings chan slog.Record

func (w warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w warnings) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w warnings) WithGroup(string) slog.Handler                { return w }
func (w warnings) Handle(_ context.Context, r slog.Record) error {
	select {
	case w <- r:
	default:
	}
	return nil
}

// TestRunWithRuntime runs a mirror-and-publish consumer the way a service
// does, started before the streams exist: it must wait for them, consume,
// publish the change its handler added to the outbox with the host's tracer
// provider and the handler's trace, and stop cleanly.
func TestRunWithRuntime(t *testing.T) {
	ctx := context.Background()
	pool, table := migrated(t)
	srv := natstest.Start(t)
	nc, js := srv.JetStream(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	logs := make(warnings, 64)

	rt, relay, err := outbox.NewRuntime(srv.Connect(t), pool, table, outbox.RuntimeOptions{
		Logger: slog.New(logs), DrainTimeout: 5 * time.Second, TracerProvider: tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	handlerTrace := make(chan trace.TraceID, 1)
	spec := consumer.Spec{Durable: "outboxed", FilterSubjects: eventbus.RawEventFilter("ONCRMDEALUPDATE")}
	h := consumer.HandlerFunc[*eventsv1.Envelope](func(ctx context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if err := table.Add(ctx, tx, nil, outbox.Message{MsgID: "chg-" + m.EventID,
			Subject: eventbus.Change("deal", m.MemberID, m.EntityID), Data: []byte(m.EntityID)}); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		select {
		case handlerTrace <- trace.SpanContextFromContext(ctx).TraceID():
		default:
		}
		return nil
	})
	if err := consumer.Register(rt, spec, consumer.DecodeEnvelope, h); err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- outbox.RunWithRuntime(runCtx, rt, relay, 50*time.Millisecond) }()
	select {
	case r := <-logs:
		if r.Message != "streams missing; waiting for `b24ctl topology apply` or the local stack" {
			t.Fatalf("first warning %q", r.Message)
		}
	case err := <-done:
		t.Fatalf("RunWithRuntime returned %v without waiting for the streams", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("no warning about the missing streams")
	}
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	changes := make(chan *nats.Msg, 4)
	if _, err := nc.ChanSubscribe("b24.changes.>", changes); err != nil {
		t.Fatal(err)
	}
	env := &eventsv1.Envelope{MessageId: "e1", MemberId: "m1", Event: "ONCRMDEALUPDATE", EntityId: "42"}
	data, _ := proto.Marshal(env)
	if _, err := js.Publish(ctx, eventbus.RawEvent("m1", "ONCRMDEALUPDATE"), data, jetstream.WithMsgID("e1")); err != nil {
		t.Fatal(err)
	}

	var change *nats.Msg
	select {
	case change = <-changes:
	case err := <-done:
		t.Fatalf("RunWithRuntime returned %v before publishing", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the change was not published")
	}
	if change.Subject != eventbus.Change("deal", "m1", "42") || string(change.Data) != "42" {
		t.Errorf("change %s %q", change.Subject, change.Data)
	}
	tid := <-handlerTrace
	got := trace.SpanContextFromContext(eventbus.Propagator().Extract(ctx, eventbus.HeaderCarrier(change.Header)))
	if got.TraceID() != tid {
		t.Error("the published change lost the handler's trace")
	}
	// The relay marks the row once JetStream confirmed it, and its
	// publisher traces with the host's provider: the publish span is in
	// the recorder, in the handler's trace. Both land just after the
	// message is delivered, so wait for them.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := relay.Pending(ctx)
		traced := publishedIn(rec, tid, change.Subject)
		if n == 0 && err == nil && traced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the publish: %d pending (%v), publish span from the host's tracer provider: %v", n, err, traced)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunWithRuntime after a clean drain: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("RunWithRuntime did not return")
	}
}

func publishedIn(rec *tracetest.SpanRecorder, tid trace.TraceID, subject string) bool {
	for _, s := range rec.Ended() {
		if s.InstrumentationScope().Name != "github.com/b24hub/b24hub/libs/eventbus" || s.SpanContext().TraceID() != tid {
			continue
		}
		for _, a := range s.Attributes() {
			if a.Key == "messaging.destination.name" && a.Value.AsString() == subject {
				return true
			}
		}
	}
	return false
}

func TestNewRuntimeArguments(t *testing.T) {
	srv := natstest.Start(t)
	nc := srv.Connect(t)
	// The pool is lazy: nothing here connects to PostgreSQL.
	pool, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	log := slog.New(slog.DiscardHandler)
	valid := outbox.RuntimeOptions{Logger: log, DrainTimeout: time.Second}
	tests := []struct {
		name string
		nc   *nats.Conn
		pool *pgxpool.Pool
		o    outbox.RuntimeOptions
		ok   bool
	}{
		{name: "valid, nil providers mean the global ones", nc: nc, pool: pool, o: valid, ok: true},
		{name: "no connection", pool: pool, o: valid},
		{name: "no pool", nc: nc, o: valid},
		{name: "no logger", nc: nc, pool: pool, o: outbox.RuntimeOptions{DrainTimeout: time.Second}},
		{name: "no drain timeout", nc: nc, pool: pool, o: outbox.RuntimeOptions{Logger: log}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, relay, err := outbox.NewRuntime(tt.nc, tt.pool, outbox.In("svc"), tt.o)
			if tt.ok != (err == nil) {
				t.Fatalf("error %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (rt == nil || relay == nil) {
				t.Fatal("nil runtime or relay")
			}
			if !tt.ok && (rt != nil || relay != nil) {
				t.Error("a runtime or relay with the error")
			}
		})
	}
}
