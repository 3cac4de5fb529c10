package eventbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestSubjects(t *testing.T) {
	tests := []struct{ got, want string }{
		{eventbus.RawEvent("m1", "ONCRMDEALUPDATE"), "b24.events.m1.ONCRMDEALUPDATE"},
		{eventbus.Change("deal", "m1", "42"), "b24.changes.deal.m1.42"},
		{eventbus.Command("deal", "m1", "update"), "b24.commands.deal.m1.update"},
		{eventbus.Outcome("deal-sync", "m1"), "b24.outcomes.deal-sync.m1"},
		{eventbus.Dead("deal-sync", "m1", "ONCRMDEALADD"), "b24.dead.deal-sync.m1.ONCRMDEALADD"},
		{eventbus.RawEventFilter("ONTASKADD")[0], "b24.events.*.ONTASKADD"},
		{eventbus.RawEventFilter()[0], "b24.events.>"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	m, e, err := eventbus.ParseRawEvent("b24.events.abc.ONCRMDEALADD")
	if err != nil || m != "abc" || e != "ONCRMDEALADD" {
		t.Errorf("ParseRawEvent = %q %q %v", m, e, err)
	}
	for _, bad := range []string{"b24.changes.x.y", "b24.events.abc", "b24.events..X", "b24.events.a.b.c"} {
		if _, _, err := eventbus.ParseRawEvent(bad); err == nil {
			t.Errorf("ParseRawEvent(%q) accepted", bad)
		}
	}
}

func TestValidToken(t *testing.T) {
	for s, want := range map[string]bool{
		"a223c6b3710f85df22e9377d6c4f7553": true, "test_member-id": true, "": false,
		"a.b": false, "a*": false, "a>": false, "a b": false, string(make([]byte, 129)): false,
	} {
		if got := eventbus.ValidToken(s); got != want {
			t.Errorf("ValidToken(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestStreamOptionsValidate(t *testing.T) {
	if err := (eventbus.StreamOptions{}).Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if err := (eventbus.StreamOptions{Replicas: 7}).Validate(); err == nil {
		t.Error("7 replicas accepted")
	}
	if err := (eventbus.StreamOptions{EventsMaxAge: time.Minute, DuplicateWindow: time.Hour}).Validate(); err == nil {
		t.Error("window longer than max age accepted")
	}
	if err := (eventbus.StreamOptions{EventsMaxBytes: 1000}).Validate(); err == nil {
		t.Error("events max bytes of 1000 accepted")
	}
}

// TestEventsStreamBounded pins the backstop of tenant isolation: the raw
// event stream has a size cap, and reaching it drops the oldest events
// rather than refusing new ones (which would answer every portal 503).
func TestEventsStreamBounded(t *testing.T) {
	for _, tc := range []struct {
		opts eventbus.StreamOptions
		want int64
	}{
		{eventbus.StreamOptions{}, eventbus.DefaultEventsMaxBytes},
		{eventbus.StreamOptions{EventsMaxBytes: 64 << 20}, 64 << 20},
	} {
		for _, cfg := range eventbus.Streams(tc.opts) {
			if cfg.Name != eventbus.StreamEvents {
				continue
			}
			if cfg.MaxBytes != tc.want || cfg.Discard != jetstream.DiscardOld {
				t.Errorf("%+v: MaxBytes %d discard %v, want %d and DiscardOld", tc.opts, cfg.MaxBytes, cfg.Discard, tc.want)
			}
		}
	}
}

func TestProvisionAndPublish(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := eventbus.CheckStreams(ctx, js); err == nil {
		t.Fatal("CheckStreams passed before provisioning")
	}
	for range 2 { // idempotent
		if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventbus.CheckStreams(ctx, js); err != nil {
		t.Fatal(err)
	}

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pub := eventbus.NewPublisher(js, eventbus.WithTracerProvider(tp))
	parent, span := tp.Tracer("test").Start(ctx, "parent")
	m := eventbus.Message{Subject: eventbus.RawEvent("m1", "ONCRMDEALUPDATE"), MsgID: "id-1", Data: []byte("x")}
	ack, err := pub.Publish(parent, m)
	if err != nil || ack.Duplicate {
		t.Fatalf("first publish: %+v %v", ack, err)
	}
	ack2, err := pub.Publish(parent, m)
	if err != nil || !ack2.Duplicate || ack2.Sequence != ack.Sequence {
		t.Fatalf("duplicate publish: %+v %v", ack2, err)
	}
	span.End()

	stored, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stored.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	got := eventbus.Propagator().Extract(context.Background(), eventbus.HeaderCarrier(raw.Header))
	if sc := trace.SpanContextFromContext(got); sc.TraceID() != span.SpanContext().TraceID() {
		t.Errorf("stored trace id %s, want %s", sc.TraceID(), span.SpanContext().TraceID())
	}
	if len(rec.Ended()) < 3 || rec.Ended()[0].Name() != "publish b24.events" {
		t.Errorf("spans = %v", rec.Ended())
	}
	var _ propagation.TextMapCarrier = eventbus.HeaderCarrier{}
}

func TestPublishNotConfirmedWhenBrokerDown(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx := context.Background()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	pub := eventbus.NewPublisher(js)
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := pub.Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent("m", "E"), MsgID: "x"})
	if err == nil {
		t.Fatal("publish confirmed with the broker down")
	}
}
