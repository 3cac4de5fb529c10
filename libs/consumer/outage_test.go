package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/proto"
)

// dependencyDown reads consumer.dependency.down for consumer and dep, the
// series without a portal (the whole consumer paused).
func dependencyDown(t *testing.T, r *sdkmetric.ManualReader, consumerName, dep string) int64 {
	t.Helper()
	return portalDown(t, r, consumerName, dep, "")
}

// portalDown reads consumer.dependency.down for consumer, dep and portal
// ("" the series without a portal label).
func portalDown(t *testing.T, r *sdkmetric.ManualReader, consumerName, dep, portal string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "consumer.dependency.down" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				c, _ := dp.Attributes.Value(attribute.Key("consumer"))
				d, _ := dp.Attributes.Value(attribute.Key("dependency"))
				p, _ := dp.Attributes.Value(attribute.Key("portal"))
				if c.AsString() == consumerName && d.AsString() == dep && p.AsString() == portal {
					return dp.Value
				}
			}
		}
	}
	return 0
}

// TestOutageDeadLettersNothing runs a consumer whose Spec's backoff is the
// default schedule (1m, 5m, 15m) scaled down to milliseconds (1, 5, 15 ms:
// 21 ms from the first try to the dead letter) through an outage hundreds
// of times longer than that schedule: first the database is down, then the
// portal answers 503, each for its own stretch. Every event is done, at its
// first delivery (the outage spent no delivery), nothing is dead-lettered,
// the consumer.dependency.down gauge named each dependency while it was
// down and reads 0 afterwards. One message fails on its own all along, and
// it is still dead-lettered after exactly MaxDeliver deliveries: the
// budget is kept for the event's own errors. The long variant (task chaos)
// runs a 60 s outage with more events and two workers.
func TestOutageDeadLettersNothing(t *testing.T) {
	events, outage, workers := 20, 3*time.Second, 1
	if os.Getenv("B24HUB_CHAOS") == "1" {
		events, outage, workers = 200, 60*time.Second, 2
	}
	h := newHarness(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spec := fastSpec("outage")
	spec.Backoff = []time.Duration{time.Millisecond, 5 * time.Millisecond, 15 * time.Millisecond}
	spec.ProbeInterval, spec.ProbeMaxInterval = time.Millisecond, 15*time.Millisecond
	spec.Concurrency = workers

	// down is the dependency that does not answer now ("" none).
	var down atomic.Value
	down.Store(consumer.DependencyPostgres)
	var calls, whileDown atomic.Int64
	h.start(func(rt *consumer.Runtime) error {
		return consumer.Register(rt, spec, consumer.DecodeEnvelope,
			consumer.HandlerFunc[*eventsv1.Envelope](func(_ context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
				calls.Add(1)
				if m.EntityID == "poison" {
					return errors.New("deal poison has a field the mirror rejects")
				}
				switch dep := down.Load().(string); dep {
				case consumer.DependencyPostgres:
					whileDown.Add(1)
					return consumer.Unavailable(dep, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"))
				case consumer.DependencyBitrix24:
					whileDown.Add(1)
					return consumer.Unavailable(dep, errors.New("crm.deal.get: 503 Service Unavailable"))
				}
				return nil
			}))
	}, consumer.WithMeterProvider(mp))

	h.publish(envelope("m1", "ONCRMDEALUPDATE", "poison", "poison"))
	for i := range events {
		h.publish(envelope("m1", "ONCRMDEALUPDATE", fmt.Sprint(i), fmt.Sprintf("evt-%d", i)))
	}
	waitFor(t, "the consumer to pause on postgresql", func() bool { return dependencyDown(t, reader, "outage", consumer.DependencyPostgres) == 1 })
	time.Sleep(outage / 2)
	down.Store(consumer.DependencyBitrix24)
	waitFor(t, "the consumer to pause on bitrix24", func() bool { return dependencyDown(t, reader, "outage", consumer.DependencyBitrix24) == 1 })
	time.Sleep(outage / 2)
	probes := whileDown.Load()
	down.Store("")

	done := map[string]uint32{}
	var deadAttempt uint32
	deadline := time.After(time.Minute)
	for len(done) < events || deadAttempt == 0 {
		select {
		case m := <-h.outcomes:
			o := &eventsv1.Outcome{}
			if err := proto.Unmarshal(m.Data, o); err != nil {
				t.Fatal(err)
			}
			switch {
			case o.Status == eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE:
				done[o.EventId] = o.Attempt
			case o.Status == eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD && o.EventId == "poison":
				deadAttempt = o.Attempt
			case o.Status == eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD:
				t.Fatalf("dead-lettered during the outage: %v", o)
			}
		case <-deadline:
			t.Fatalf("after the outage: %d of %d events done, poison dead at attempt %d", len(done), events, deadAttempt)
		}
	}
	for id, attempt := range done {
		if attempt != 1 {
			t.Errorf("%s done at delivery %d: the outage spent deliveries", id, attempt)
		}
	}
	if want := uint32(len(spec.Backoff) + 1); deadAttempt != want {
		t.Errorf("poison dead-lettered at delivery %d, want %d (MaxDeliver)", deadAttempt, want)
	}
	if d := <-h.dead; d.Header.Get(eventbus.HeaderDeadReason) != "max_deliveries" {
		t.Errorf("dead letter %v", d.Header)
	}
	select {
	case d := <-h.dead:
		t.Errorf("a second dead letter: %s %v", d.Subject, d.Header)
	default:
	}
	waitFor(t, "the gauge to read 0", func() bool {
		return dependencyDown(t, reader, "outage", consumer.DependencyPostgres) == 0 &&
			dependencyDown(t, reader, "outage", consumer.DependencyBitrix24) == 0
	})
	// The runtime reports an outcome before it acks the message, so the
	// last ack may still be on its way when the last outcome arrives.
	waitFor(t, "the consumer to be idle (nothing pending, nothing unacknowledged)", func() bool {
		info := consumerInfo(t, h.js, "outage")
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	t.Logf("outage %s (schedule %s): %d handler calls while down, %d in all, for %d events",
		outage, 21*time.Millisecond, probes, calls.Load(), events+1)
}

// waitFor polls cond until it holds, failing after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
