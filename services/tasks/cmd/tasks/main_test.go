package main

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestRunOnItsOwn starts the command against an embedded JetStream and a
// fresh database, waits for its durable consumers, and shuts it down.
func TestRunOnItsOwn(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"B24HUB_NATS_URL": srv.URL(), "B24HUB_DATABASE_URL": pgtest.NewDatabase(t), "B24HUB_ADMIN_ADDR": "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out syncBuffer
	go func() { done <- command.Run(ctx, nil, func(k string) string { return env[k] }, &out) }()
	deadline := time.Now().Add(time.Minute)
	for _, name := range []string{"tasks"} {
		stream := eventbus.StreamEvents
		for {
			if _, err := js.Consumer(context.Background(), stream, name); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer %s never provisioned; log:\n%s", name, out.b.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
