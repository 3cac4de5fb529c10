package consumertest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/nats-io/nats.go/jetstream"
)

// RunsOnItsOwn starts svc's command as its main would, against an embedded
// JetStream with the platform's streams and a fresh PostgreSQL database,
// waits until every durable consumer its declaration names exists on the
// server, then cancels it and expects a clean exit. It is the check that a
// service's command starts alone, shared by every consumer's cmd test.
func RunsOnItsOwn(t *testing.T, svc svcmain.Service) {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"B24HUB_NATS_URL": srv.URL(), "B24HUB_DATABASE_URL": pgtest.NewDatabase(t), "B24HUB_ADMIN_ADDR": "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var out lockedBuffer
	go func() {
		done <- svc.Command().Run(ctx, nil, func(k string) string { return env[k] }, &out)
	}()
	deadline := time.Now().Add(time.Minute)
	for _, c := range svc.Declaration.Consumers {
		for {
			_, err := js.Consumer(context.Background(), c.Stream, c.Durable)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Fatalf("consumer %s on %s: %v", c.Durable, c.Stream, err)
			}
			select {
			case err := <-done:
				t.Fatalf("%s exited before consumer %s existed: %v; log:\n%s", svc.Declaration.Name, c.Durable, err, out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer %s on %s never provisioned; log:\n%s", c.Durable, c.Stream, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v; log:\n%s", err, out.String())
	}
}

// lockedBuffer is the command's log output, written by its goroutines and
// read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
