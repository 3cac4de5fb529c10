package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

func envelope(member, event, entity, id string) *eventsv1.Envelope {
	return &eventsv1.Envelope{MessageId: id, MemberId: member, Event: event, EntityId: entity}
}

// harness runs one consumer against an embedded JetStream.
type harness struct {
	t        *testing.T
	srv      *natstest.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	outcomes chan *nats.Msg
	dead     chan *nats.Msg
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, nc: nc, js: js, outcomes: make(chan *nats.Msg, 1024), dead: make(chan *nats.Msg, 64)}
	if _, err := nc.ChanSubscribe(eventbus.OutcomesPrefix+".>", h.outcomes); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.ChanSubscribe(eventbus.DeadPrefix+".>", h.dead); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	return h
}

// start runs a runtime with reg applied on its own connection and returns
// a stop function that cancels it and waits for Run.
func (h *harness) start(reg func(rt *consumer.Runtime) error, opts ...consumer.Option) (stop func() error) {
	h.t.Helper()
	nc := h.srv.Connect(h.t)
	opts = append([]consumer.Option{consumer.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	rt, err := consumer.New(nc, opts...)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := reg(rt); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(2 * time.Minute):
				runErr = errors.New("Run did not return")
			}
		})
		return runErr
	}
	h.t.Cleanup(func() { _ = stop() })
	return stop
}

func (h *harness) publish(env *eventsv1.Envelope) {
	h.t.Helper()
	data, _ := proto.Marshal(env)
	if _, err := h.js.Publish(context.Background(), eventbus.RawEvent(env.MemberId, env.Event), data, jetstream.WithMsgID(env.MessageId)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) outcome() *eventsv1.Outcome {
	h.t.Helper()
	select {
	case m := <-h.outcomes:
		o := &eventsv1.Outcome{}
		if err := proto.Unmarshal(m.Data, o); err != nil {
			h.t.Fatal(err)
		}
		return o
	case <-time.After(2 * time.Minute):
		h.t.Fatal("no outcome")
		return nil
	}
}

func fastSpec(name string) consumer.Spec {
	return consumer.Spec{
		Durable: name, FilterSubjects: eventbus.RawEventFilter("ONCRMDEALUPDATE"),
		AckWait: 2 * time.Second, Backoff: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
	}
}

func TestPermanentErrorDeadLettersOnce(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	h.start(func(rt *consumer.Runtime) error {
		return consumer.Register(rt, fastSpec("perm"), consumer.DecodeEnvelope,
			consumer.HandlerFunc[*eventsv1.Envelope](func(context.Context, *consumer.Message[*eventsv1.Envelope]) error {
				calls.Add(1)
				return consumer.Permanent(errors.New("deal 7 belongs to no pipeline"))
			}))
	})
	h.publish(envelope("m1", "ONCRMDEALUPDATE", "7", "evt-7"))
	o := h.outcome()
	if o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD || o.ErrorKind != consumer.KindPermanent || o.Attempt != 1 ||
		o.EventId != "evt-7" || o.Consumer != "perm" || o.MemberId != "m1" || o.EntityId != "7" || !strings.Contains(o.Error, "no pipeline") {
		t.Errorf("outcome %+v", o)
	}
	d := <-h.dead
	if d.Subject != "b24.dead.perm.m1.ONCRMDEALUPDATE" {
		t.Errorf("dead subject %s", d.Subject)
	}
	for k, want := range map[string]string{
		eventbus.HeaderDeadReason: "permanent", eventbus.HeaderDeadConsumer: "perm", eventbus.HeaderDeadDeliveries: "1",
		eventbus.HeaderDeadSubject: "b24.events.m1.ONCRMDEALUPDATE", eventbus.HeaderDeadStream: "B24_EVENTS",
		eventbus.HeaderDeadStreamSeq: "1", eventbus.HeaderOriginalMsgID: "evt-7",
	} {
		if got := d.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(d.Header.Get(eventbus.HeaderDeadError), "no pipeline") {
		t.Errorf("dead error header %q", d.Header.Get(eventbus.HeaderDeadError))
	}
	if calls.Load() != 1 {
		t.Errorf("handler called %d times, want 1", calls.Load())
	}
}

type overload struct{}

func (overload) Error() string     { return "OVERLOAD_LIMIT" }
func (overload) ErrorKind() string { return eventbus.ErrorKindOverload }

func TestTransientRetriesThenDeadLetters(t *testing.T) {
	h := newHarness(t)
	h.start(func(rt *consumer.Runtime) error {
		return consumer.Register(rt, fastSpec("flaky"), consumer.DecodeEnvelope,
			consumer.HandlerFunc[*eventsv1.Envelope](func(context.Context, *consumer.Message[*eventsv1.Envelope]) error {
				return fmt.Errorf("crm.deal.get: %w", overload{})
			}))
	})
	h.publish(envelope("m1", "ONCRMDEALUPDATE", "1", "evt-1"))
	var got []string
	for range 3 { // MaxDeliver = len(Backoff)+1
		o := h.outcome()
		got = append(got, fmt.Sprintf("%d:%s:%s", o.Attempt, o.Status, o.ErrorKind))
	}
	want := []string{
		"1:OUTCOME_STATUS_RETRY:overload",
		"2:OUTCOME_STATUS_RETRY:overload",
		"3:OUTCOME_STATUS_DEAD:overload",
	}
	if !slices.Equal(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	d := <-h.dead
	if d.Header.Get(eventbus.HeaderDeadReason) != "max_deliveries" || d.Header.Get(eventbus.HeaderDeadDeliveries) != "3" {
		t.Errorf("dead headers %v", d.Header)
	}
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	h.start(func(rt *consumer.Runtime) error {
		return consumer.Register(rt, fastSpec("panicky"), consumer.DecodeEnvelope,
			consumer.HandlerFunc[*eventsv1.Envelope](func(context.Context, *consumer.Message[*eventsv1.Envelope]) error {
				if calls.Add(1) == 1 {
					panic("nil map")
				}
				return nil
			}))
	})
	h.publish(envelope("m1", "ONCRMDEALUPDATE", "1", "evt-1"))
	if o := h.outcome(); o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY || o.ErrorKind != consumer.KindPanic {
		t.Errorf("first outcome %+v", o)
	}
	if o := h.outcome(); o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE || o.Attempt != 2 {
		t.Errorf("second outcome %+v", o)
	}
}

func TestRetryAfterUsesItsDelay(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	spec := fastSpec("later")
	spec.Backoff = []time.Duration{time.Hour} // would never come back in time
	h.start(func(rt *consumer.Runtime) error {
		return consumer.Register(rt, spec, consumer.DecodeEnvelope,
			consumer.HandlerFunc[*eventsv1.Envelope](func(context.Context, *consumer.Message[*eventsv1.Envelope]) error {
				if calls.Add(1) == 1 {
					return consumer.RetryAfter(10*time.Millisecond, errors.New("recording not there yet"))
				}
				return nil
			}))
	})
	h.publish(envelope("m1", "ONCRMDEALUPDATE", "1", "evt-1"))
	h.outcome()
	if o := h.outcome(); o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE || o.Attempt != 2 {
		t.Errorf("second outcome %+v", o)
	}
}

func TestBatchesArePerPortalAndCoalesce(t *testing.T) {
	h := newHarness(t)
	// Publish everything first, so the runtime sees a storm.
	n := 0
	for i := range 10 { // ten updates of deal 1 on m1
		h.publish(envelope("m1", "ONCRMDEALUPDATE", "1", fmt.Sprintf("m1-1-%d", i)))
		n++
	}
	for e := range 5 {
		h.publish(envelope("m2", "ONCRMDEALUPDATE", fmt.Sprint(e), fmt.Sprintf("m2-%d", e)))
		n++
	}
	var mu sync.Mutex
	var batches [][]*consumer.Message[*eventsv1.Envelope]
	spec := fastSpec("batcher")
	spec.BatchWindow = time.Second
	h.start(func(rt *consumer.Runtime) error {
		return consumer.RegisterBatch(rt, spec, consumer.DecodeEnvelope,
			consumer.BatchHandlerFunc[*eventsv1.Envelope](func(_ context.Context, b []*consumer.Message[*eventsv1.Envelope]) []error {
				mu.Lock()
				batches = append(batches, b)
				mu.Unlock()
				return nil
			}))
	})
	for range n {
		if o := h.outcome(); o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE {
			t.Errorf("outcome %+v", o)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	deal1 := 0
	for _, b := range batches {
		members := map[string]bool{}
		for _, m := range b {
			members[m.MemberID] = true
			if m.MemberID == "m1" && m.EntityID == "1" {
				deal1++
			}
		}
		if len(members) != 1 {
			t.Errorf("batch mixes portals: %v", slices.Collect(maps.Keys(members)))
		}
		if deal1 != 0 && deal1 != 10 {
			t.Errorf("the ten updates of deal 1 were split across batches")
		}
	}
	if len(batches) != 2 {
		t.Errorf("%d batches, want 2 (one per portal)", len(batches))
	}
}

// TestOneBatchPerMemberHoldsTheNextBatch: while a portal's batch is being
// handled, its next messages wait past their window and go together in
// one batch; another portal's batch is not held. A batch handed over as
// soon as its window ended would reach the handler before m2's (its
// window ended first).
func TestOneBatchPerMemberHoldsTheNextBatch(t *testing.T) {
	h := newHarness(t)
	spec := fastSpec("onebatch")
	spec.BatchWindow = 20 * time.Millisecond
	spec.OneBatchPerMember = true
	var mu sync.Mutex
	var m1Batches [][]string // entity ids of each m1 batch
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	h.start(func(rt *consumer.Runtime) error {
		return consumer.RegisterBatch(rt, spec, consumer.DecodeEnvelope,
			consumer.BatchHandlerFunc[*eventsv1.Envelope](func(_ context.Context, b []*consumer.Message[*eventsv1.Envelope]) []error {
				if b[0].MemberID != "m1" {
					return nil
				}
				var ids []string
				for _, m := range b {
					ids = append(ids, m.EntityID)
				}
				mu.Lock()
				m1Batches = append(m1Batches, ids)
				first := len(m1Batches) == 1
				mu.Unlock()
				if first {
					close(entered)
					<-release
				}
				return nil
			}))
	})
	t.Cleanup(unblock) // before the runtime stops, if the test fails early
	h.publish(envelope("m1", "ONCRMDEALUPDATE", "1", "m1-1"))
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first batch never reached the handler")
	}
	for e := 2; e <= 6; e++ {
		h.publish(envelope("m1", "ONCRMDEALUPDATE", fmt.Sprint(e), fmt.Sprintf("m1-%d", e)))
	}
	h.publish(envelope("m2", "ONCRMDEALUPDATE", "1", "m2-1"))
	if o := h.outcome(); o.GetEventId() != "m2-1" {
		t.Fatalf("first outcome %s (%s), want m2-1: m1's next batch was not held", o.GetEventId(), o.GetStatus())
	}
	mu.Lock()
	calls := len(m1Batches)
	mu.Unlock()
	if calls != 1 {
		t.Fatalf("%d m1 batches while its first was in the handler, want 1", calls)
	}
	unblock()
	for range 6 {
		if o := h.outcome(); o.GetStatus() != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE {
			t.Errorf("outcome %+v", o)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := [][]string{{"1"}, {"2", "3", "4", "5", "6"}}
	if fmt.Sprint(m1Batches) != fmt.Sprint(want) {
		t.Errorf("m1 batches %v, want %v", m1Batches, want)
	}
}

func TestDrainFinishesRunningHandlers(t *testing.T) {
	h := newHarness(t)
	started := make(chan struct{})
	release := make(chan struct{})
	stop := h.start(func(rt *consumer.Runtime) error {
		return consumer.Register(rt, fastSpec("drainer"), consumer.DecodeEnvelope,
			consumer.HandlerFunc[*eventsv1.Envelope](func(ctx context.Context, _ *consumer.Message[*eventsv1.Envelope]) error {
				close(started)
				<-release
				return ctx.Err() // nil: the drain does not cancel a running handler
			}))
	})
	h.publish(envelope("m1", "ONCRMDEALUPDATE", "1", "evt-1"))
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(50 * time.Millisecond) // let the shutdown begin while the handler runs
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if o := h.outcome(); o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE {
		t.Errorf("outcome %+v", o)
	}
	info := consumerInfo(t, h.js, "drainer")
	if info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("after drain: %+v", info)
	}
}

func TestDrainTimeoutNaksForAnotherReplica(t *testing.T) {
	h := newHarness(t)
	started := make(chan struct{}, 1)
	stop := h.start(func(rt *consumer.Runtime) error {
		return consumer.Register(rt, fastSpec("stuck"), consumer.DecodeEnvelope,
			consumer.HandlerFunc[*eventsv1.Envelope](func(ctx context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
				if m.Delivery == 1 {
					started <- struct{}{}
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}))
	}, consumer.WithDrainTimeout(50*time.Millisecond))
	h.publish(envelope("m1", "ONCRMDEALUPDATE", "1", "evt-1"))
	<-started
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if o := h.outcome(); o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY || o.ErrorKind != consumer.KindShutdown {
		t.Errorf("outcome %+v", o)
	}
	// Another replica takes it over at once.
	h.start(func(rt *consumer.Runtime) error {
		return consumer.Register(rt, fastSpec("stuck"), consumer.DecodeEnvelope,
			consumer.HandlerFunc[*eventsv1.Envelope](func(context.Context, *consumer.Message[*eventsv1.Envelope]) error { return nil }))
	})
	if o := h.outcome(); o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE || o.Attempt != 2 {
		t.Errorf("takeover outcome %+v", o)
	}
}

func TestInProgressKeepsLongHandlersAlive(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	spec := fastSpec("slow")
	// InProgress goes out every AckWait/3: the AckWait leaves a loaded
	// machine two thirds of a second of scheduling delay before the server
	// would redeliver, and the handler holds the message for four.
	spec.AckWait = time.Second
	h.start(func(rt *consumer.Runtime) error {
		return consumer.Register(rt, spec, consumer.DecodeEnvelope,
			consumer.HandlerFunc[*eventsv1.Envelope](func(context.Context, *consumer.Message[*eventsv1.Envelope]) error {
				calls.Add(1)
				time.Sleep(4 * spec.AckWait)
				return nil
			}))
	})
	h.publish(envelope("m1", "ONCRMDEALUPDATE", "1", "evt-1"))
	if o := h.outcome(); o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE || o.Attempt != 1 {
		t.Errorf("outcome %+v", o)
	}
	if calls.Load() != 1 {
		t.Errorf("handler ran %d times: the server redelivered a message in progress", calls.Load())
	}
}

func TestProvisionIsTheSpec(t *testing.T) {
	h := newHarness(t)
	nc := h.srv.Connect(t)
	rt, err := consumer.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	spec := fastSpec("provisioned")
	spec.MaxAckPending = 77
	if err := consumer.Register(rt, spec, consumer.DecodeEnvelope, consumer.HandlerFunc[*eventsv1.Envelope](nil)); err != nil {
		t.Fatal(err)
	}
	if err := consumer.Register(rt, spec, consumer.DecodeEnvelope, consumer.HandlerFunc[*eventsv1.Envelope](nil)); err == nil {
		t.Error("duplicate durable accepted")
	}
	if err := rt.Ready(context.Background()); err == nil {
		t.Error("ready before provisioning")
	}
	for range 2 {
		if err := rt.Provision(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	info := consumerInfo(t, h.js, "provisioned")
	if info.Config.MaxAckPending != 77 || info.Config.AckWait != 2*time.Second || info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		t.Errorf("config %+v", info.Config)
	}
	if err := rt.Ready(context.Background()); err != nil {
		t.Error(err)
	}
}

func consumerInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), eventbus.StreamEvents, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// pacedHandler records its batches' entity ids and paces m1 by readyAt.
type pacedHandler struct {
	mu      sync.Mutex
	readyAt time.Time
	batches [][]string
	at      []time.Time // when each batch reached the handler
}

func (p *pacedHandler) ReadyAt(member string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if member != "m1" {
		return time.Time{}
	}
	return p.readyAt
}

func (p *pacedHandler) HandleBatch(_ context.Context, b []*consumer.Message[*eventsv1.Envelope]) []error {
	var ids []string
	for _, m := range b {
		ids = append(ids, m.EntityID)
	}
	p.mu.Lock()
	p.batches, p.at = append(p.batches, ids), append(p.at, time.Now())
	p.mu.Unlock()
	return nil
}

// TestPacerHoldsTheBatchUntilReady: a Pacer handler's portal batch stays
// open past its window until the portal is ready, taking what arrives
// meanwhile (without the pacer deal 1 would go alone after 50 ms); a
// ReadyAt that does not come holds it for ten windows only.
func TestPacerHoldsTheBatchUntilReady(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readyIn  time.Duration
		want     string
		notUntil time.Duration // the batch reached the handler no earlier
	}{
		{"until the slot", 300 * time.Millisecond, "[[1 2 3]]", 300 * time.Millisecond},
		{"at most ten windows", time.Hour, "[[1 2 3]]", 11 * 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			spec := fastSpec("paced")
			spec.BatchWindow = 50 * time.Millisecond
			spec.OneBatchPerMember = true
			ph := &pacedHandler{}
			start := time.Now()
			ph.readyAt = start.Add(tc.readyIn)
			h.start(func(rt *consumer.Runtime) error {
				return consumer.RegisterBatch(rt, spec, consumer.DecodeEnvelope, ph)
			})
			h.publish(envelope("m1", "ONCRMDEALUPDATE", "1", "m1-1"))
			time.Sleep(100 * time.Millisecond) // past deal 1's window
			h.publish(envelope("m1", "ONCRMDEALUPDATE", "2", "m1-2"))
			h.publish(envelope("m1", "ONCRMDEALUPDATE", "3", "m1-3"))
			for range 3 {
				if o := h.outcome(); o.GetStatus() != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE {
					t.Errorf("outcome %+v", o)
				}
			}
			ph.mu.Lock()
			defer ph.mu.Unlock()
			if got := fmt.Sprint(ph.batches); got != tc.want {
				t.Errorf("batches %s, want %s", got, tc.want)
			}
			if len(ph.at) > 0 && ph.at[0].Sub(start) < tc.notUntil {
				t.Errorf("the batch reached the handler %v after the first publish, before %v", ph.at[0].Sub(start), tc.notUntil)
			}
		})
	}
}
