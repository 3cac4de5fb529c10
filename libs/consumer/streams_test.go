package consumer_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	default: // a slow test must not block the runtime
	}
	return nil
}

func TestProvisionWhenStreamsExist(t *testing.T) {
	tests := []struct {
		name string
		// during runs once ProvisionWhenStreamsExist has logged that it
		// waits; nil means it must not wait.
		during func(t *testing.T, js jetstream.JetStream, cancel context.CancelFunc)
		// before runs before the call.
		before  func(t *testing.T, js jetstream.JetStream, nc *nats.Conn)
		wantErr func(error) bool
	}{
		{
			name:    "streams already exist",
			before:  func(t *testing.T, js jetstream.JetStream, _ *nats.Conn) { provisionStreams(t, js) },
			wantErr: func(err error) bool { return err == nil },
		},
		{
			name: "streams appear while waiting",
			during: func(t *testing.T, js jetstream.JetStream, _ context.CancelFunc) {
				provisionStreams(t, js)
			},
			wantErr: func(err error) bool { return err == nil },
		},
		{
			name: "context ends while waiting",
			during: func(_ *testing.T, _ jetstream.JetStream, cancel context.CancelFunc) {
				cancel()
			},
			wantErr: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
		{
			name:    "other errors return at once",
			before:  func(_ *testing.T, _ jetstream.JetStream, nc *nats.Conn) { nc.Close() },
			wantErr: func(err error) bool { return err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := natstest.Start(t)
			_, js := srv.JetStream(t)
			nc := srv.Connect(t)
			logs := make(warnings, 16)
			rt, err := consumer.New(nc, consumer.WithLogger(slog.New(logs)))
			if err != nil {
				t.Fatal(err)
			}
			spec := consumer.Spec{Durable: "waits", FilterSubjects: eventbus.RawEventFilter("ONCRMDEALUPDATE")}
			if err := consumer.Register(rt, spec, consumer.DecodeEnvelope, consumer.HandlerFunc[*eventsv1.Envelope](nil)); err != nil {
				t.Fatal(err)
			}
			if tt.before != nil {
				tt.before(t, js, nc)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- rt.ProvisionWhenStreamsExist(ctx) }()

			if tt.during != nil {
				select {
				case r := <-logs:
					if r.Message != "streams missing; waiting for `b24ctl topology apply` or the local stack" || !hasAttr(r, "error") {
						t.Errorf("warning %q without the error", r.Message)
					}
				case err := <-done:
					t.Fatalf("returned %v before waiting", err)
				}
				tt.during(t, js, cancel)
			}
			var err2 error
			select {
			case err2 = <-done:
			case <-time.After(3 * time.Minute):
				t.Fatal("ProvisionWhenStreamsExist did not return")
			}
			if !tt.wantErr(err2) {
				t.Fatalf("error %v", err2)
			}
			if tt.during == nil {
				if len(logs) != 0 {
					t.Errorf("waited (logged %q) though nothing was missing", (<-logs).Message)
				}
			}
			if err2 == nil {
				if err := rt.Ready(context.Background()); err != nil {
					t.Errorf("not ready after provisioning: %v", err)
				}
			}
		})
	}
}

func provisionStreams(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	if err := eventbus.Provision(context.Background(), js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
}

func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = found || a.Key == key
		return !found
	})
	return found
}
