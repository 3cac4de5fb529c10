package consumer_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"google.golang.org/protobuf/proto"
)

// TestHeldMessageIsNotDeliveredAgain pins down the fix of the mechanism
// behind TestBrokerKilledUnderLoad's events stuck at "error after 2
// attempts". The runtime used to read with the nats.go Messages iterator,
// which buffers pulled messages that no handler has taken yet; those got no
// InProgress, so past AckWait the server delivered them again while the
// first copy was still held, both copies ran, and a stale copy failing after
// the success left "retry" after "done" in the outcomes (ledger.TestFold
// keeps the success). The reader now pulls only as many messages as the
// pipeline has room for and tracks each one the moment it arrives, so every
// message the server delivered is kept in progress. Here the first handler
// call holds a worker for three AckWaits while the other messages wait: each
// event must run exactly once, be done at its first delivery, report no
// retry, and the consumer must show nothing redelivered. The long variant
// (task chaos) uses more events, two workers and batches.
func TestHeldMessageIsNotDeliveredAgain(t *testing.T) {
	n, hold, workers, batch := 6, 3*time.Second, 1, 1
	if os.Getenv("B24HUB_CHAOS") == "1" {
		n, hold, workers, batch = 200, 10*time.Second, 2, 5
	}
	h := newHarness(t)
	spec := fastSpec("held")
	spec.AckWait = time.Second
	spec.Concurrency, spec.MaxDeliver = workers, 50
	spec.BatchSize, spec.BatchWindow = batch, 20*time.Millisecond

	var mu sync.Mutex
	runs := map[string]int{}
	var once sync.Once
	h.start(func(rt *consumer.Runtime) error {
		return consumer.RegisterBatch(rt, spec, consumer.DecodeEnvelope,
			consumer.BatchHandlerFunc[*eventsv1.Envelope](func(_ context.Context, b []*consumer.Message[*eventsv1.Envelope]) []error {
				// The first call holds its worker (kept alive by
				// InProgress) while the next messages wait.
				once.Do(func() { time.Sleep(hold) })
				mu.Lock()
				defer mu.Unlock()
				for _, m := range b {
					runs[m.EventID]++
				}
				return nil
			}))
	})
	for i := range n {
		h.publish(envelope(fmt.Sprint("m", i%3), "ONCRMDEALUPDATE", fmt.Sprint(i), fmt.Sprint("held-", i)))
	}

	done := map[string]uint32{}
	deadline := time.After(2*hold + time.Minute)
	for len(done) < n {
		select {
		case m := <-h.outcomes:
			o := &eventsv1.Outcome{}
			if err := proto.Unmarshal(m.Data, o); err != nil {
				t.Fatal(err)
			}
			if o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE {
				t.Errorf("outcome %s at attempt %d for %s: a copy was delivered again", o.Status, o.Attempt, o.EventId)
				continue
			}
			if prev, ok := done[o.EventId]; ok {
				t.Errorf("%s done twice (attempts %d and %d)", o.EventId, prev, o.Attempt)
			}
			done[o.EventId] = o.Attempt
		case <-deadline:
			t.Fatalf("%d of %d events done", len(done), n)
		}
	}
	for id, attempt := range done {
		if attempt != 1 {
			t.Errorf("%s done at delivery %d, want 1", id, attempt)
		}
	}
	waitFor(t, "the consumer to settle", func() bool {
		info := consumerInfo(t, h.js, "held")
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	info := consumerInfo(t, h.js, "held")
	if info.NumRedelivered != 0 || info.Delivered.Consumer != uint64(n) {
		t.Errorf("consumer delivered %d messages for %d events, %d redelivered", info.Delivered.Consumer, n, info.NumRedelivered)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, r := range runs {
		if r != 1 {
			t.Errorf("%s handled %d times", id, r)
		}
	}
}
