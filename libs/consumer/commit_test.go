package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go/jetstream"
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
	deadline := time.Now().Add(30 * time.Second)
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
