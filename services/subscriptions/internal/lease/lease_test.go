package lease_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/testwait"
	"github.com/b24hub/b24hub/services/subscriptions/internal/lease"
	"github.com/nats-io/nats.go/jetstream"
)

func bucket(t *testing.T) jetstream.KeyValue {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx := context.Background()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}

// TestOneLeaderAndHandover checks mutual exclusion and that a graceful
// shutdown hands the lease over without waiting for the TTL.
func TestOneLeaderAndHandover(t *testing.T) {
	kv := bucket(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var leaders, maxLeaders atomic.Int32
	var led [2]atomic.Bool
	lead := func(i int) func(ctx context.Context) {
		return func(ctx context.Context) {
			n := leaders.Add(1)
			for {
				m := maxLeaders.Load()
				if n <= m || maxLeaders.CompareAndSwap(m, n) {
					break
				}
			}
			led[i].Store(true)
			<-ctx.Done()
			led[i].Store(false)
			leaders.Add(-1)
		}
	}
	// A long TTL: a handover faster than it proves the release works.
	ttl := time.Minute
	a, err := lease.New(kv, "test", "a", ttl, log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lease.New(kv, "test", "b", ttl, log)
	if err != nil {
		t.Fatal(err)
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(ctxA, lead(0)) }()
	waitFor(t, "a to lead", led[0].Load)
	go func() { _ = b.Run(ctxB, lead(1)) }()
	time.Sleep(200 * time.Millisecond)
	if led[1].Load() {
		t.Fatal("b leads while a holds the lease")
	}
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatalf("a.Run after cancel: %v", err)
	}
	waitFor(t, "b to take over", led[1].Load)
	if m := maxLeaders.Load(); m != 1 {
		t.Fatalf("%d leaders at once", m)
	}
}

// TestTakeoverAfterExpiry checks that a crashed holder (its record left
// behind) is replaced once its record expires.
func TestTakeoverAfterExpiry(t *testing.T) {
	kv := bucket(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := kv.Put(ctx, "test", []byte(`{"holder":"dead","expires":"`+time.Now().Add(300*time.Millisecond).Format(time.RFC3339Nano)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := lease.New(kv, "test", "b", 600*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var led atomic.Bool
	go func() { _ = b.Run(ctx, func(ctx context.Context) { led.Store(true); <-ctx.Done() }) }()
	waitFor(t, "takeover", led.Load)
	rec, err := b.Current(ctx)
	if err != nil || rec.Holder != "b" {
		t.Fatalf("record = %+v, %v", rec, err)
	}
}
