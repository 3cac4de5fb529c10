package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// sink is a CommitHandler that fails its first failures calls, then
// records every batch it commits.
type sink struct {
	mu       sync.Mutex
	failures int
	calls    int
	batches  [][]consumer.Committed
}

func (s *sink) commit(_ context.Context, b []consumer.Committed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.failures {
		return errors.New("database unavailable")
	}
	s.batches = append(s.batches, append([]consumer.Committed(nil), b...))
	return nil
}

func (s *sink) committed() (n int, batches int, calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.batches {
		n += len(b)
	}
	return n, len(s.batches), s.calls
}

// TestRegisterCommit: batch-commit mode hands messages of any portal over
// in batches up to BatchSize, retries a failing batch (no nak, no dead
// letter), acknowledges after the commit, publishes no outcome, and
// provisions a consumer that never gives up on a message.
func TestRegisterCommit(t *testing.T) {
	h := newHarness(t)
	const total = 25
	for i := range total {
		h.publish(&eventsv1.Envelope{MessageId: fmt.Sprint("c-", i), MemberId: fmt.Sprint("m", i%3), Event: "ONCRMDEALUPDATE", EntityId: "1"})
	}
	s := &sink{failures: 2}
	spec := consumer.Spec{Durable: "ledger-like", FilterSubjects: []string{eventbus.EventsPrefix + ".>"}, BatchSize: 10, BatchWindow: 50 * time.Millisecond}
	stop := h.start(func(rt *consumer.Runtime) error {
		return consumer.RegisterCommit(rt, spec, s.commit, consumer.CommitOptions{RetryMax: 20 * time.Millisecond})
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if n, _, _ := s.committed(); n == total {
			break
		}
		if time.Now().After(deadline) {
			n, b, c := s.committed()
			t.Fatalf("committed %d of %d messages (%d batches, %d calls)", n, total, b, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n, batches, calls := s.committed()
	if batches < 3 || calls != batches+2 {
		t.Errorf("%d messages in %d batches after %d calls; want batches of at most 10 and two failed calls", n, batches, calls)
	}
	s.mu.Lock()
	for _, b := range s.batches {
		if len(b) > 10 {
			t.Errorf("batch of %d, BatchSize 10", len(b))
		}
		for _, m := range b {
			if m.StreamSeq == 0 || m.Stored.IsZero() || m.Header.Get(eventbus.HeaderMsgID) == "" {
				t.Errorf("message without metadata: %+v", m)
			}
		}
	}
	s.mu.Unlock()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cons, err := h.js.Consumer(context.Background(), eventbus.StreamEvents, "ledger-like")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("after commit: %d unacknowledged, %d pending", info.NumAckPending, info.NumPending)
	}
	if info.Config.MaxDeliver != -1 || info.Config.AckPolicy != jetstream.AckExplicitPolicy || info.Config.FilterSubject != eventbus.EventsPrefix+".>" {
		t.Errorf("consumer config: max deliver %d, ack policy %v, filter %q", info.Config.MaxDeliver, info.Config.AckPolicy, info.Config.FilterSubject)
	}
	select {
	case m := <-h.outcomes:
		t.Errorf("batch-commit mode published an outcome on %s", m.Subject)
	case m := <-h.dead:
		t.Errorf("batch-commit mode dead-lettered a message on %s", m.Subject)
	default:
	}
}

// TestCommitOutageDeliversEachMessageOnce: a batch that cannot be committed
// for many ack waits (PostgreSQL down, classified with ClassifyPostgres)
// is retried in progress while the other messages wait on the server, not
// in a client buffer: once the database is back every message is committed
// exactly once and the consumer delivered each one once. The
// consumer.dependency.down gauge names postgresql meanwhile.
func TestCommitOutageDeliversEachMessageOnce(t *testing.T) {
	h := newHarness(t)
	const total = 40
	for i := range total {
		h.publish(&eventsv1.Envelope{MessageId: fmt.Sprint("o-", i), MemberId: "m1", Event: "ONCRMDEALUPDATE", EntityId: "1"})
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	seen := map[uint64]int{}
	spec := consumer.Spec{Durable: "ledger-outage", FilterSubjects: []string{eventbus.EventsPrefix + ".>"}, BatchSize: 5,
		BatchWindow: 10 * time.Millisecond, AckWait: 300 * time.Millisecond}
	h.start(func(rt *consumer.Runtime) error {
		return consumer.RegisterCommit(rt, spec, func(_ context.Context, b []consumer.Committed) error {
			if down.Load() {
				return consumer.ClassifyPostgres(fmt.Errorf("ledger: write: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range b {
				seen[m.StreamSeq]++
			}
			return nil
		}, consumer.CommitOptions{RetryMax: 20 * time.Millisecond})
	}, consumer.WithMeterProvider(mp))
	waitFor(t, "the gauge to name postgresql", func() bool { return dependencyDown(t, reader, "ledger-outage", "postgresql") == 1 })
	time.Sleep(5 * spec.AckWait) // the outage: five ack waits
	down.Store(false)
	waitFor(t, "every message committed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == total
	})
	waitFor(t, "the consumer to settle", func() bool { return consumerInfo(t, h.js, "ledger-outage").NumAckPending == 0 })
	mu.Lock()
	defer mu.Unlock()
	for seq, n := range seen {
		if n != 1 {
			t.Errorf("stream seq %d committed %d times", seq, n)
		}
	}
	if info := consumerInfo(t, h.js, "ledger-outage"); info.Delivered.Consumer != total {
		t.Errorf("%d deliveries for %d messages: messages waited unseen past their ack wait", info.Delivered.Consumer, total)
	}
	if got := dependencyDown(t, reader, "ledger-outage", "postgresql"); got != 0 {
		t.Errorf("gauge %d after the outage", got)
	}
}
