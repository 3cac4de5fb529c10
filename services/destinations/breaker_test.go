package destinations_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/testwait"
	"github.com/b24hub/b24hub/services/destinations"
	"github.com/nats-io/nats.go/jetstream"
)

// waitFor polls cond until it holds (the condition, not the time, is what
// the test asserts).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}

func (e *env) consumerInfo(t *testing.T, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.js.Consumer(context.Background(), eventbus.StreamChanges, durable)
	if err != nil {
		t.Fatal(err)
	}
	return c.CachedInfo()
}

func find(list []eventbus.DestinationInfo, name string) eventbus.DestinationInfo {
	for _, d := range list {
		if d.Name == name {
			return d
		}
	}
	return eventbus.DestinationInfo{}
}

// A destination whose endpoint keeps failing is paused after PauseAfter
// failed attempts: its durable is paused on the server, so its backlog
// waits in JetStream and nothing dead-letters however long the outage
// lasts (longer than retry_for here); a healthy destination receives
// everything meanwhile; after the endpoint recovers, a probe closes the
// circuit and every change arrives, in order per entity.
func TestFailingDestinationIsPausedAndResumes(t *testing.T) {
	e := newEnv(t)
	var down atomic.Bool
	down.Store(true)
	dead := newReceiver(t, func(int, string) (int, bool, string) {
		if down.Load() {
			return http.StatusInternalServerError, false, ""
		}
		return 0, false, ""
	})
	healthy := newReceiver(t, nil)
	rcs := map[string]*receiver{"dead": dead, "healthy": healthy}
	e.declare(t, rcs, "5s", "retry_for: 1s")
	in := e.run(t, rcs, func(c *destinations.Config) {
		c.Delivery.PauseAfter, c.Delivery.ProbeInterval = 3, 200*time.Millisecond
	})
	const entities, per = 4, 5
	for s := range per {
		for en := range entities {
			e.publish(t, fmt.Sprintf("d%d", en), s)
		}
	}
	waitFor(t, "the failing destination's durable paused", func() bool { return e.consumerInfo(t, "dest-dead").Paused })
	healthy.wait(t, entities*per)
	if got := find(in.svc.List(context.Background(), ""), "healthy"); got.State != "delivering" || got.Paused {
		t.Errorf("healthy destination: %+v", got)
	}
	// Let the outage outlast retry_for (1s) several times over, through
	// probes that fail and pause again.
	waitFor(t, "ten pauses", func() bool { return find(in.svc.List(context.Background(), ""), "dead").Pauses >= 10 })
	st := find(in.svc.List(context.Background(), ""), "dead")
	if st.State == "delivering" {
		t.Errorf("failing destination listed as %+v", st)
	}
	dead.mu.Lock()
	if len(dead.seen) != 0 {
		t.Errorf("failing destination accepted %d", len(dead.seen))
	}
	dead.mu.Unlock()

	down.Store(false)
	if err := testwait.Until(time.Now().Add(testwait.Patience), func() bool {
		dead.mu.Lock()
		defer dead.mu.Unlock()
		return len(dead.seen) >= entities*per
	}); err != nil {
		// Say where it stands: the breaker, and the durable on the server.
		dead.mu.Lock()
		n := len(dead.seen)
		dead.mu.Unlock()
		info := e.consumerInfo(t, "dest-dead")
		t.Fatalf("%d of %d deliveries after the endpoint recovered (%v); breaker %+v; durable: paused %v, ack pending %d, pending %d, waiting pulls %d, redelivered %d, priority groups %+v",
			n, entities*per, err, find(in.svc.List(context.Background(), ""), "dead"), info.Paused, info.NumAckPending, info.NumPending,
			info.NumWaiting, info.NumRedelivered, info.PriorityGroups)
	}
	waitFor(t, "the circuit closed", func() bool {
		d := find(in.svc.List(context.Background(), ""), "dead")
		return d.State == "delivering" && !d.Paused
	})
	dead.mu.Lock()
	for en := range entities {
		got := dead.order[fmt.Sprintf("d%d", en)]
		for i, s := range got {
			if s != i {
				t.Errorf("d%d: order %v", en, got)
				break
			}
		}
	}
	dead.mu.Unlock()
	// No dead letter for either destination: the outage paused, it did
	// not exhaust retry_for.
	st2, err := e.js.Stream(context.Background(), eventbus.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st2.Info(context.Background(), jetstream.WithSubjectFilter(eventbus.DeadPrefix+".>"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d dead letters (subjects %v), want none", info.State.Msgs, info.State.Subjects)
	}
}

// Per-entity order holds across a crash of the delivering service in the
// middle of a retry: the crashed instance hands nothing back, so its
// messages return one by one as their ack wait runs out; the next
// instance gathers them and resumes in stream order.
func TestOrderKeptAcrossCrashMidRetry(t *testing.T) {
	e := newEnv(t)
	var down atomic.Bool
	down.Store(true)
	var failures atomic.Int32
	first := webhookIDOf(t, "crm", "d0-0")
	rc := newReceiver(t, func(_ int, id string) (int, bool, string) {
		if down.Load() && id == first {
			failures.Add(1)
			return http.StatusServiceUnavailable, false, ""
		}
		return 0, false, ""
	})
	rcs := map[string]*receiver{"crm": rc}
	e.declare(t, rcs, "5s")
	tune := func(c *destinations.Config) {
		c.Delivery.PauseAfter = 1 << 20 // this test is about order, not the breaker
		c.Delivery.AckWait, c.Delivery.PinnedTTL = time.Second, time.Second
	}
	a := e.run(t, rcs, tune)
	e.publish(t, "d0", 0)
	waitFor(t, "d0-0 retried", func() bool { return failures.Load() >= 3 })
	for s := 1; s < 10; s++ {
		e.publish(t, "d0", s)
		e.publish(t, "d1", s)
	}
	rc.wait(t, 9) // d1's changes: d0's wait behind d0-0
	waitFor(t, "d0's changes held by the first instance", func() bool {
		ci := e.consumerInfo(t, "dest-crm")
		return ci.NumPending == 0 && ci.NumAckPending == 10
	})
	a.crash()
	down.Store(false)
	b := e.run(t, rcs, tune)
	defer b.stop()
	rc.wait(t, 10)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if got := rc.order["d0"]; fmt.Sprint(got) != fmt.Sprint([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("d0 delivered in order %v", got)
	}
}
