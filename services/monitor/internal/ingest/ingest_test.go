package ingest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/testwait"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor/internal/ingest"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestDecodeEvent(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	env := &eventsv1.Envelope{MessageId: "m-1", MemberId: "mem", Domain: "a.bitrix24.ru", Event: "ONCRMDEALUPDATE",
		EntityId: "42", Source: eventsv1.Source_SOURCE_OFFLINE, ReceivedAt: timestamppb.New(at), Body: []byte("x=1")}
	data, _ := proto.Marshal(env)
	h := nats.Header{}
	h.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	tests := []struct {
		name   string
		raw    ingest.Raw
		wantOK bool
		want   ledger.Event
	}{
		{"envelope", ingest.Raw{Subject: "b24.events.mem.ONCRMDEALUPDATE", Header: h, Data: data, StreamSeq: 3},
			true, ledger.Event{ID: "m-1", Portal: "mem", EventType: "ONCRMDEALUPDATE", Source: "offline", ReceivedAt: at,
				TraceID: "0af7651916cd43dd8448eb211c80319c", EntityID: "42"}},
		{"garbage is still recorded", ingest.Raw{Subject: "b24.events.mem.ONTASKADD", Data: []byte{0xff, 0x01}, StreamSeq: 9, Timestamp: at},
			false, ledger.Event{ID: "seq-9", Portal: "mem", EventType: "ONTASKADD", Source: "unknown", ReceivedAt: at}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ingest.DecodeEvent(tt.raw)
			if ok != tt.wantOK || got.ID != tt.want.ID || got.Portal != tt.want.Portal || got.EventType != tt.want.EventType ||
				got.Source != tt.want.Source || !got.ReceivedAt.Equal(tt.want.ReceivedAt) || got.TraceID != tt.want.TraceID ||
				got.EntityID != tt.want.EntityID {
				t.Errorf("DecodeEvent = %+v, %v", got, ok)
			}
		})
	}
}

func TestDecodeOutcomeAndDeadLetter(t *testing.T) {
	o := &eventsv1.Outcome{EventId: "m-1", Consumer: "deal-sync", Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY,
		Attempt: 2, Error: "OVERLOAD_LIMIT", ErrorKind: "overload_limit", MemberId: "mem"}
	data, _ := proto.Marshal(o)
	a, ok := ingest.DecodeOutcome(ingest.Raw{Subject: "b24.outcomes.deal-sync.mem", Data: data})
	if !ok || a.Status != ledger.StatusError || a.Attempt != 2 || a.ErrorKind != "overload_limit" {
		t.Errorf("DecodeOutcome = %+v %v", a, ok)
	}
	if _, ok := ingest.DecodeOutcome(ingest.Raw{Data: []byte("nonsense")}); ok {
		t.Error("garbage outcome accepted")
	}
	h := nats.Header{}
	h.Set(eventbus.HeaderDeadReason, "undecodable")
	h.Set(eventbus.HeaderOriginalMsgID, "m-7")
	h.Set(eventbus.HeaderDeadDeliveries, "1")
	d, ok := ingest.DecodeDeadLetter(ingest.Raw{Subject: "b24.dead.deal-sync.mem.ONCRMDEALADD", Header: h, Data: []byte{0xff}})
	if !ok || d.Event.ID != "m-7" || d.Consumer != "deal-sync" || d.Event.Portal != "mem" || !d.Event.ReceivedAt.IsZero() ||
		d.Reason != "undecodable" || d.Deliveries != 1 {
		t.Errorf("DecodeDeadLetter = %+v %v", d, ok)
	}
}

func FuzzDecode(f *testing.F) {
	env, _ := proto.Marshal(&eventsv1.Envelope{MessageId: "x", MemberId: "m", Event: "E"})
	f.Add("b24.events.m.E", env)
	f.Add("b24.dead.c.m.E", []byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		raw := ingest.Raw{Subject: subject, Data: data}
		if e, _ := ingest.DecodeEvent(raw); e.ID == "" || e.ReceivedAt.IsZero() || e.Source == "" {
			t.Fatalf("incomplete event %+v", e)
		}
		ingest.DecodeOutcome(raw)
		ingest.DecodeDeadLetter(raw)
	})
}

// flaky fails its first n writes, then records every batch.
type flaky struct {
	mu     sync.Mutex
	failN  int
	events map[string]int
}

func (f *flaky) WriteEvents(_ context.Context, es []ledger.Event) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failN > 0 {
		f.failN--
		return 0, errors.New("connection refused")
	}
	for _, e := range es {
		f.events[e.ID]++
	}
	return len(es), nil
}
func (f *flaky) ApplyAttempts(context.Context, []ledger.Attempt) error       { return nil }
func (f *flaky) ApplyDeadLetters(context.Context, []ledger.DeadLetter) error { return nil }

func (f *flaky) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events)
}

func TestConsumerRetriesAndAcksOnlyAfterWrite(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	pub := eventbus.NewPublisher(js)
	for i := range 50 {
		env, _ := proto.Marshal(&eventsv1.Envelope{MessageId: "id-" + string(rune('A'+i%26)) + string(rune('a'+i/26)),
			MemberId: "mem", Event: "ONCRMDEALUPDATE", ReceivedAt: timestamppb.Now()})
		if _, err := pub.Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent("mem", "ONCRMDEALUPDATE"),
			MsgID: "id-" + string(rune('A'+i%26)) + string(rune('a'+i/26)), Data: env}); err != nil {
			t.Fatal(err)
		}
	}
	store := &flaky{failN: 3, events: map[string]int{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := ingest.NewConsumer(js, ingest.LedgerSpec, ingest.EventWriter(store, log),
		ingest.Options{BatchSize: 20, RetryMax: 50 * time.Millisecond}, log)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	// Nothing is acknowledged while the writes fail.
	cons, err := js.Consumer(ctx, eventbus.StreamEvents, ingest.DurableLedger)
	for err != nil && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		cons, err = js.Consumer(ctx, eventbus.StreamEvents, ingest.DurableLedger)
	}
	for store.count() < 50 {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if acked := info.AckFloor.Stream; int(acked) > store.count() {
			t.Fatalf("acked up to %d with only %d written", acked, store.count())
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of 50 events written", store.count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = jetstream.Consumer(cons)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.For(t, "the condition", cond)
}
