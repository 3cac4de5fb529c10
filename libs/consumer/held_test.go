package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/protobuf/proto"
)

// logRecorder keeps the messages of every log record.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) has(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.msgs, msg)
}

// outcomeLog collects the harness's outcomes in the background.
type outcomeLog struct {
	mu   sync.Mutex
	done map[string][]uint32 // event id → attempts reported DONE
	dead []*eventsv1.Outcome
}

func collectOutcomes(t *testing.T, h *harness) *outcomeLog {
	t.Helper()
	l := &outcomeLog{done: map[string][]uint32{}}
	stop := make(chan struct{})
	finished := make(chan struct{})
	t.Cleanup(func() { close(stop); <-finished })
	go func() {
		defer close(finished)
		for {
			select {
			case <-stop:
				return
			case m := <-h.outcomes:
				o := &eventsv1.Outcome{}
				if err := proto.Unmarshal(m.Data, o); err != nil {
					panic(err)
				}
				l.mu.Lock()
				switch o.Status {
				case eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE:
					l.done[o.EventId] = append(l.done[o.EventId], o.Attempt)
				case eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD:
					l.dead = append(l.dead, o)
				}
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// allDone reports whether every one of ids has a DONE outcome.
func (l *outcomeLog) allDone(ids []string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if len(l.done[id]) == 0 {
			return false
		}
	}
	return true
}

// check fails t for a dead letter and for an event of ids not done
// exactly once, at its first delivery.
func (l *outcomeLog) check(t *testing.T, ids []string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.dead {
		t.Errorf("dead-lettered: %v", o)
	}
	for _, id := range ids {
		if got := l.done[id]; !slices.Equal(got, []uint32{1}) {
			t.Errorf("%s done at deliveries %v, want once at delivery 1 (no delivery spent)", id, got)
		}
	}
}

// portalOutage is a handler for many portals of which some do not
// answer: a portal's messages fail with consumer.UnavailableFor while it
// is down (decided once per batch, as a portal answers a whole batch
// call), and each message done is recorded in the order it was handled.
type portalOutage struct {
	mu       sync.Mutex
	down     map[string]bool
	handled  map[string][]string // member/entity → event ids done, in order
	whileDn  map[string]int      // member → messages run while it was down
	seen     map[string]bool     // entity ids the handler was given
	inflight map[string]int      // member → batches running now
	overlap  map[string]bool     // member → two batches ran at once while it was down
}

func newPortalOutage() *portalOutage {
	return &portalOutage{down: map[string]bool{}, handled: map[string][]string{}, whileDn: map[string]int{},
		seen: map[string]bool{}, inflight: map[string]int{}, overlap: map[string]bool{}}
}

func (o *portalOutage) set(member string, down bool) {
	o.mu.Lock()
	o.down[member] = down
	o.mu.Unlock()
}

func (o *portalOutage) HandleBatch(_ context.Context, b []*consumer.Message[*eventsv1.Envelope]) []error {
	member := b[0].MemberID
	o.mu.Lock()
	down := o.down[member]
	o.inflight[member]++
	if down && o.inflight[member] > 1 {
		o.overlap[member] = true
	}
	for _, m := range b {
		o.seen[m.MemberID+"/"+m.EntityID] = true
	}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.inflight[member]--
		o.mu.Unlock()
	}()
	errs := make([]error, len(b))
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, m := range b {
		if m.MemberID != member {
			panic("a batch mixes portals")
		}
		if down {
			o.whileDn[member]++
			errs[i] = consumer.UnavailableFor(consumer.DependencyBitrix24, member, errors.New("crm.deal.get: 503 Service Unavailable"))
			continue
		}
		k := m.MemberID + "/" + m.EntityID
		o.handled[k] = append(o.handled[k], m.EventID)
	}
	return errs
}

func (o *portalOutage) runsWhileDown(member string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.whileDn[member]
}

func (o *portalOutage) saw(member, entity string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen[member+"/"+entity]
}

// TestPortalOutageHoldsOnlyThatPortal: portal A answers 503 for hundreds
// of probes (the retry schedule is 1, 5, 15 ms: 21 ms to a dead letter)
// while portal B's messages, published before and during A's outage, are
// all done; A's messages are held, not redelivered, its new messages join
// them without calling it, and one probe at a time calls it. When A
// answers, each of its messages is done exactly once, at its first
// delivery, in stream order per deal; nothing is dead-lettered and the
// consumer never pauses as a whole.
func TestPortalOutageHoldsOnlyThatPortal(t *testing.T) {
	h := newHarness(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	logs := &logRecorder{}
	spec := fastSpec("held")
	spec.Backoff = []time.Duration{time.Millisecond, 5 * time.Millisecond, 15 * time.Millisecond}
	spec.ProbeInterval, spec.ProbeMaxInterval = time.Millisecond, 15*time.Millisecond
	// Room for 40 messages (Concurrency×BatchSize×2): A's 23 fit.
	spec.Concurrency, spec.BatchSize, spec.BatchWindow = 4, 5, 5*time.Millisecond
	handler := newPortalOutage()
	handler.set("mA", true)
	h.start(func(rt *consumer.Runtime) error {
		return consumer.RegisterBatch(rt, spec, consumer.DecodeEnvelope, consumer.BatchHandler[*eventsv1.Envelope](handler))
	}, consumer.WithMeterProvider(mp), consumer.WithLogger(slog.New(logs)))
	outcomes := collectOutcomes(t, h)

	// A's five deals, four updates each, interleaved with B's.
	var idsA, idsB []string
	order := map[string][]string{} // member/entity → event ids in stream order
	pub := func(member, entity, id string) {
		h.publish(envelope(member, "ONCRMDEALUPDATE", entity, id))
		order[member+"/"+entity] = append(order[member+"/"+entity], id)
		if member == "mA" {
			idsA = append(idsA, id)
		} else {
			idsB = append(idsB, id)
		}
	}
	for k := range 4 {
		for e := range 5 {
			pub("mA", fmt.Sprint(e), fmt.Sprintf("A-%d-%d", e, k))
			pub("mB", fmt.Sprint(e), fmt.Sprintf("B-%d-%d", e, k))
		}
	}
	waitFor(t, "portal mA to be held", func() bool { return portalDown(t, reader, "held", consumer.DependencyBitrix24, "mA") == 1 })
	// New messages of both portals while A is held: B's are done, A's
	// (a deal of its own, so no probe batch takes it) wait unseen.
	for k := range 3 {
		pub("mA", "9", fmt.Sprintf("A-9-%d", k))
		pub("mB", "9", fmt.Sprintf("B-9-%d", k))
	}
	waitFor(t, "every message of portal mB to be done", func() bool { return outcomes.allDone(idsB) })
	// A stays down for many times its retry schedule.
	waitFor(t, "portal mA to be probed many times", func() bool { return handler.runsWhileDown("mA") >= 20*20 })
	if outcomes.allDone(idsA[:1]) {
		t.Fatal("a message of mA done while mA was down")
	}
	if handler.saw("mA", "9") {
		t.Error("a message of mA published while mA was held was given to the handler: it should have joined the held ones")
	}
	if n := dependencyDown(t, reader, "held", consumer.DependencyBitrix24); n != 0 {
		t.Errorf("consumer.dependency.down without a portal reads %d while one portal is down: the whole consumer paused", n)
	}
	if handler.overlap["mA"] {
		t.Error("two batches of mA ran at once while it was down: one probe per held portal")
	}

	handler.set("mA", false)
	waitFor(t, "every message of portal mA to be done", func() bool { return outcomes.allDone(idsA) })
	waitFor(t, "the gauge of mA to read 0", func() bool { return portalDown(t, reader, "held", consumer.DependencyBitrix24, "mA") == 0 })
	waitFor(t, "the consumer to be idle (nothing pending, nothing unacknowledged)", func() bool {
		info := consumerInfo(t, h.js, "held")
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	outcomes.check(t, append(idsA, idsB...))
	// The held portal's messages run in stream order. (B's are as without
	// an outage: two batches of one portal may run at once, and a deal's
	// updates split across them; a handler that must keep a deal's order
	// serialises on it, as deal-sync does with its advisory locks.)
	handler.mu.Lock()
	for k, want := range order {
		if got := handler.handled[k]; strings.HasPrefix(k, "mA/") && !slices.Equal(got, want) {
			t.Errorf("%s handled as %v, want %v (stream order, once each)", k, got, want)
		}
	}
	handler.mu.Unlock()
	for _, want := range []string{"portal unavailable; its events are held, the consumer goes on with other portals", "portal answers; its held events ran"} {
		if !logs.has(want) {
			t.Errorf("log has no %q", want)
		}
	}
	if logs.has("dependency unavailable; consumer paused until it answers") {
		t.Error("the consumer paused as a whole for one portal")
	}
}

// TestHeldMessagesFillingTheRoomPauseTheConsumer: a held portal's
// messages can fill what the consumer may hold (its credits, at most
// MaxAckPending). Then the reader stops fetching — the whole consumer is
// paused, the log and the gauge without a portal say so — instead of
// deadlocking or dead-lettering; when the portal answers, everything is
// done at its first delivery and the pause ends.
func TestHeldMessagesFillingTheRoomPauseTheConsumer(t *testing.T) {
	h := newHarness(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	logs := &logRecorder{}
	spec := fastSpec("full")
	spec.Backoff = []time.Duration{time.Millisecond, 5 * time.Millisecond, 15 * time.Millisecond}
	spec.ProbeInterval, spec.ProbeMaxInterval = time.Millisecond, 15*time.Millisecond
	// Room for 8 messages (Concurrency×BatchSize×2 and MaxAckPending): a
	// pull asks for at least 2, so more than 6 held fill it.
	spec.Concurrency, spec.BatchSize, spec.BatchWindow, spec.MaxAckPending = 2, 2, 5*time.Millisecond, 8
	handler := newPortalOutage()
	handler.set("mA", true)
	h.start(func(rt *consumer.Runtime) error {
		return consumer.RegisterBatch(rt, spec, consumer.DecodeEnvelope, consumer.BatchHandler[*eventsv1.Envelope](handler))
	}, consumer.WithMeterProvider(mp), consumer.WithLogger(slog.New(logs)))
	outcomes := collectOutcomes(t, h)

	var ids []string
	for e := range 30 {
		id := fmt.Sprintf("A-%d", e)
		h.publish(envelope("mA", "ONCRMDEALUPDATE", fmt.Sprint(e), id))
		ids = append(ids, id)
	}
	for e := range 3 {
		id := fmt.Sprintf("B-%d", e)
		h.publish(envelope("mB", "ONCRMDEALUPDATE", fmt.Sprint(e), id))
		ids = append(ids, id)
	}
	waitFor(t, "the consumer to pause as a whole", func() bool {
		return dependencyDown(t, reader, "full", consumer.DependencyBitrix24) == 1
	})
	if !logs.has("messages held for unavailable portals fill the consumer's room; consumer paused") {
		t.Error("the log does not say why the consumer paused")
	}
	// Paused, it stays paused and spends nothing: probes go on, nothing
	// more is fetched, nothing is dead-lettered.
	before := handler.runsWhileDown("mA")
	waitFor(t, "mA to be probed while the consumer is paused", func() bool { return handler.runsWhileDown("mA") >= before+50 })
	if info := consumerInfo(t, h.js, "full"); info.NumAckPending > spec.MaxAckPending || info.NumPending == 0 {
		t.Errorf("paused: %d unacknowledged (max %d), %d pending: the reader should have stopped with messages left",
			info.NumAckPending, spec.MaxAckPending, info.NumPending)
	}
	if n := dependencyDown(t, reader, "full", consumer.DependencyBitrix24); n != 1 {
		t.Errorf("gauge without a portal reads %d while paused", n)
	}

	handler.set("mA", false)
	waitFor(t, "every message to be done", func() bool { return outcomes.allDone(ids) })
	waitFor(t, "the gauges to read 0", func() bool {
		return dependencyDown(t, reader, "full", consumer.DependencyBitrix24) == 0 &&
			portalDown(t, reader, "full", consumer.DependencyBitrix24, "mA") == 0
	})
	waitFor(t, "the consumer to be idle", func() bool {
		info := consumerInfo(t, h.js, "full")
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	outcomes.check(t, ids)
	if !logs.has("held messages fit the consumer's room again; consumer resumed") {
		t.Error("the log does not say the consumer resumed")
	}
}

// TestHeldPortalIsHandedBackOnStop: a runtime that stops while a portal's
// messages are held hands them back at once (nak, kind unavailable) for
// another replica, rather than keeping them until their ack wait (a
// minute here) runs out; Run returns. The restart costs each one delivery,
// as it does for the consumer-wide pause.
func TestHeldPortalIsHandedBackOnStop(t *testing.T) {
	h := newHarness(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spec := fastSpec("handback")
	spec.AckWait = time.Minute
	spec.ProbeInterval, spec.ProbeMaxInterval = time.Millisecond, 15*time.Millisecond
	spec.BatchSize, spec.BatchWindow = 5, 5*time.Millisecond
	down := newPortalOutage()
	down.set("mA", true)
	stop := h.start(func(rt *consumer.Runtime) error {
		return consumer.RegisterBatch(rt, spec, consumer.DecodeEnvelope, consumer.BatchHandler[*eventsv1.Envelope](down))
	}, consumer.WithMeterProvider(mp))
	outcomes := collectOutcomes(t, h)
	var ids []string
	for e := range 3 {
		id := fmt.Sprintf("A-%d", e)
		h.publish(envelope("mA", "ONCRMDEALUPDATE", fmt.Sprint(e), id))
		ids = append(ids, id)
	}
	waitFor(t, "portal mA to be held", func() bool { return portalDown(t, reader, "handback", consumer.DependencyBitrix24, "mA") == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := portalDown(t, reader, "handback", consumer.DependencyBitrix24, "mA"); n != 0 {
		t.Errorf("gauge of mA reads %d after the runtime stopped", n)
	}

	h.start(func(rt *consumer.Runtime) error {
		return consumer.RegisterBatch(rt, spec, consumer.DecodeEnvelope, consumer.BatchHandler[*eventsv1.Envelope](newPortalOutage()))
	})
	waitFor(t, "another replica to do the held messages", func() bool { return outcomes.allDone(ids) })
	outcomes.mu.Lock()
	defer outcomes.mu.Unlock()
	for _, id := range ids {
		if got := outcomes.done[id]; !slices.Equal(got, []uint32{2}) {
			t.Errorf("%s done at deliveries %v, want once at delivery 2", id, got)
		}
	}
	if len(outcomes.dead) > 0 {
		t.Errorf("dead-lettered: %v", outcomes.dead)
	}
}
