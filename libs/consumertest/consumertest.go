// Package consumertest is the conformance suite every b24hub consumer runs
// from its own tests. It starts the consumer in a real runtime against an
// embedded JetStream and checks the contract the platform relies on:
//
//   - success acks: every valid fixture ends DONE or SKIPPED on its first
//     delivery and nothing stays unacknowledged;
//   - trace context flows: the handler runs inside the publisher's trace and
//     the outcome carries its trace id;
//   - redelivery is idempotent: a duplicate of each fixture and a
//     redelivery after a lost ack leave the consumer's effects unchanged;
//   - undecodable payloads are terminated and dead-lettered, never handed to
//     the handler, never retried.
//
// Use:
//
//	func TestConformance(t *testing.T) {
//		consumertest.Run(t, consumertest.Case[*eventsv1.Envelope]{
//			Spec: mything.Spec(), Decode: consumer.DecodeEnvelope,
//			Handler: h, Valid: fixtures, Effects: countRows,
//		})
//	}
package consumertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// WaitTimeout bounds every wait of the suite. It guards against hangs; it
// is not a speed assertion.
var WaitTimeout = 2 * time.Minute

// Fixture is one message to publish.
type Fixture struct {
	// Subject is required; it must match the Spec's filter subjects.
	Subject string
	// Data is the payload.
	Data []byte
	// MsgID is the Nats-Msg-Id. Optional; the suite makes one up.
	MsgID string
	// Header holds the message's headers. Optional; EnvelopeFixture sets
	// the ones the ingress sends.
	Header nats.Header
}

// EnvelopeFixture builds a Fixture for a raw event: the very message the
// ingress publishes for env (eventbus.RawEventMessage), subject and
// headers included. An envelope without a source is taken as a push. It
// panics on an envelope the ingress could not publish (no message id, a
// member id or event that is not a subject token): that is a broken test.
func EnvelopeFixture(env *eventsv1.Envelope) Fixture {
	if env.GetSource() == eventsv1.Source_SOURCE_UNSPECIFIED {
		env = proto.CloneOf(env)
		env.Source = eventsv1.Source_SOURCE_PUSH
	}
	m, err := eventbus.RawEventMessage(env, nil)
	if err != nil {
		panic(fmt.Sprintf("consumertest: EnvelopeFixture: %v", err))
	}
	return Fixture{Subject: m.Subject, Data: m.Data, MsgID: m.MsgID, Header: m.Header}
}

// CommandFixture builds a Fixture for a command, on its command subject.
func CommandFixture(cmd *eventsv1.Command) Fixture {
	data, err := proto.Marshal(cmd)
	if err != nil {
		panic(err)
	}
	return Fixture{Subject: eventbus.Command(cmd.GetEntityType(), cmd.GetMemberId(), cmd.GetAction()), Data: data, MsgID: cmd.GetId()}
}

// Case describes the consumer under test.
type Case[T any] struct {
	// Spec is the consumer's real Spec. The suite keeps its durable name and
	// filter subjects and shortens its delays (AckWait 5s, Backoff 10ms,
	// MaxDeliver 3, BatchWindow 20ms) so the suite runs quickly.
	Spec consumer.Spec
	// Decode is the decoder the consumer registers with. Required.
	Decode consumer.Decoder[T]
	// Handler or BatchHandler: exactly one is required.
	Handler      consumer.Handler[T]
	BatchHandler consumer.BatchHandler[T]
	// Valid holds messages the handler must process successfully. At least
	// one is required.
	Valid []Fixture
	// Effects returns a fingerprint of everything the handler has done so
	// far (rows written, changes published, REST writes made). Redelivery
	// and duplicates must not change it. Optional but strongly advised:
	// without it, idempotency is checked through outcomes only.
	Effects func(t testing.TB) string
	// Server is the JetStream server the handler's own dependencies use.
	// Optional; the suite starts one when nil.
	Server *natstest.Server
	// Logger for the runtime. Optional; default discards.
	Logger *slog.Logger
}

// Run runs the conformance suite as subtests of t.
func Run[T any](t *testing.T, c Case[T]) {
	t.Helper()
	if c.Decode == nil || (c.Handler == nil) == (c.BatchHandler == nil) || len(c.Valid) == 0 {
		t.Fatal("consumertest: Case needs Decode, exactly one of Handler and BatchHandler, and Valid fixtures")
	}
	srv := c.Server
	if srv == nil {
		srv = natstest.Start(t)
	}
	nc, js := srv.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatalf("consumertest: provision streams: %v", err)
	}

	spec := c.Spec
	spec.AckWait, spec.Backoff, spec.MaxDeliver = 5*time.Second, []time.Duration{10 * time.Millisecond}, 3
	if c.BatchHandler != nil {
		spec.BatchWindow = 20 * time.Millisecond
	}

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	w := &wrapper[T]{handled: map[string]int{}, traces: map[string]trace.TraceID{}, loseAck: map[string]bool{}}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt, err := consumer.New(nc, consumer.WithLogger(log), consumer.WithTracerProvider(tp), consumer.WithDrainTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.Handler != nil {
		w.single = c.Handler
		err = consumer.Register(rt, spec, c.Decode, consumer.Handler[T](w))
	} else {
		w.batch = c.BatchHandler
		err = consumer.RegisterBatch(rt, spec, c.Decode, consumer.BatchHandler[T](w))
	}
	if err != nil {
		t.Fatalf("consumertest: register: %v", err)
	}

	outcomes := subscribe(t, nc, eventbus.Outcome(spec.Durable, "*"))
	dead := subscribe(t, nc, eventbus.DeadPrefix+"."+spec.Durable+".>")

	runErr := make(chan error, 1)
	go func() { runErr <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("consumertest: Run: %v", err)
			}
		case <-time.After(WaitTimeout):
			t.Error("consumertest: Run did not return after cancel (drain hangs)")
		}
	})

	pub := eventbus.NewPublisher(js, eventbus.WithTracerProvider(tp))
	publish := func(f Fixture, msgID string) trace.TraceID {
		t.Helper()
		pctx, span := tp.Tracer("consumertest").Start(ctx, "consumertest publish")
		defer span.End()
		// A copy: the publisher adds the trace context and message id to
		// the header, and a fixture is published more than once.
		m := eventbus.Message{Subject: f.Subject, MsgID: msgID, Data: f.Data, Header: nats.Header{}}
		for k, v := range f.Header {
			m.Header[k] = slices.Clone(v)
		}
		if _, err := pub.Publish(pctx, m); err != nil {
			t.Fatalf("consumertest: publish %s: %v", f.Subject, err)
		}
		return span.SpanContext().TraceID()
	}

	var effects string
	t.Run("success acks", func(t *testing.T) {
		sent := map[string]trace.TraceID{}
		for i, f := range c.Valid {
			id := f.MsgID
			if id == "" {
				id = fmt.Sprintf("consumertest-valid-%d", i)
			}
			sent[id] = publish(f, id)
		}
		for range c.Valid {
			o := outcomes.next(t)
			if o.GetStatus() != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE && o.GetStatus() != eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED {
				t.Errorf("event %s: outcome %s (%s, kind %q), want DONE or SKIPPED", o.GetEventId(), o.GetStatus(), o.GetError(), o.GetErrorKind())
			}
			if o.GetAttempt() != 1 {
				t.Errorf("event %s: attempt %d, want 1", o.GetEventId(), o.GetAttempt())
			}
		}
		waitSettled(t, js, spec)
		if c.Effects != nil {
			effects = c.Effects(t)
		}
	})

	t.Run("trace context flows", func(t *testing.T) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.traces) == 0 {
			t.Fatal("the handler never ran")
		}
		valid := map[trace.TraceID]bool{}
		for _, s := range rec.Ended() {
			if s.Name() == "consumertest publish" {
				valid[s.SpanContext().TraceID()] = true
			}
		}
		for id, tid := range w.traces {
			if !valid[tid] && !batchLinked(rec, tid, valid) {
				t.Errorf("event %s: handler ran in trace %s, which is not the publisher's and links none of its messages", id, tid)
			}
		}
		for _, o := range outcomes.all() {
			var tid trace.TraceID
			if b, err := trace.TraceIDFromHex(o.GetTraceId()); err == nil {
				tid = b
			}
			if !valid[tid] {
				t.Errorf("outcome of %s has trace id %q, not the publisher's", o.GetEventId(), o.GetTraceId())
			}
		}
	})

	t.Run("redelivery is idempotent", func(t *testing.T) {
		w.mu.Lock()
		for i := range c.Valid {
			w.loseAck[fmt.Sprintf("consumertest-dup-%d", i)] = true
		}
		w.mu.Unlock()
		for i, f := range c.Valid {
			// A copy with another Nats-Msg-Id is a duplicate the stream's
			// de-duplication cannot catch (push + offline + replay).
			publish(f, fmt.Sprintf("consumertest-dup-%d", i))
		}
		// Each copy: a first attempt whose ack is "lost" (RETRY), then a
		// redelivery that must succeed.
		var done int
		for done < len(c.Valid) {
			o := outcomes.next(t)
			switch o.GetStatus() {
			case eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED:
				done++
			case eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY:
			default:
				t.Fatalf("event %s: outcome %s (%s)", o.GetEventId(), o.GetStatus(), o.GetError())
			}
		}
		waitSettled(t, js, spec)
		if c.Effects == nil {
			t.Log("no Effects func: idempotency checked through outcomes only")
			return
		}
		if got := c.Effects(t); got != effects {
			t.Errorf("effects changed by a duplicate or redelivery:\n before: %s\n after:  %s", effects, got)
		}
	})

	t.Run("undecodable terms and dead-letters", func(t *testing.T) {
		before := w.calls()
		garbage := Fixture{Subject: c.Valid[0].Subject, Data: []byte("\xff\xff\xff\xff not a protobuf message")}
		publish(garbage, "consumertest-garbage")
		o := outcomes.next(t)
		if o.GetStatus() != eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD || o.GetErrorKind() != consumer.KindUndecodable || o.GetAttempt() != 1 {
			t.Errorf("garbage: outcome %s kind %q attempt %d, want DEAD undecodable 1", o.GetStatus(), o.GetErrorKind(), o.GetAttempt())
		}
		m := dead.nextMsg(t)
		if r := m.Header.Get(eventbus.HeaderDeadReason); r != "undecodable" {
			t.Errorf("dead letter reason %q, want undecodable", r)
		}
		if got := m.Header.Get(eventbus.HeaderDeadConsumer); got != spec.Durable {
			t.Errorf("dead letter consumer %q, want %q", got, spec.Durable)
		}
		if string(m.Data) != string(garbage.Data) {
			t.Error("dead letter does not carry the original payload")
		}
		waitSettled(t, js, spec)
		if w.calls() != before {
			t.Error("the handler was called with an undecodable payload")
		}
	})
}

// batchLinked reports whether the handler's trace is a batch span that
// links a message span of one of the valid traces.
func batchLinked(rec *tracetest.SpanRecorder, tid trace.TraceID, valid map[trace.TraceID]bool) bool {
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != tid {
			continue
		}
		for _, l := range s.Links() {
			if valid[l.SpanContext.TraceID()] {
				return true
			}
		}
	}
	return false
}

// waitSettled waits until the consumer has nothing delivered-but-unacked
// and nothing pending.
func waitSettled(t testing.TB, js jetstream.JetStream, spec consumer.Spec) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := js.Consumer(ctx, spec.WithDefaults().Stream, spec.Durable)
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = c.Info(ctx)
		}
		cancel()
		if err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumertest: consumer %s not settled: %+v %v", spec.Durable, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wrapper records what the handler saw and can simulate a lost ack: it runs
// the real handler and then fails the first delivery of marked messages.
type wrapper[T any] struct {
	single consumer.Handler[T]
	batch  consumer.BatchHandler[T]

	mu      sync.Mutex
	handled map[string]int
	traces  map[string]trace.TraceID
	loseAck map[string]bool
}

var errLostAck = errors.New("consumertest: simulated lost ack")

func (w *wrapper[T]) note(ctx context.Context, m *consumer.Message[T]) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handled[m.EventID]++
	w.traces[m.EventID] = trace.SpanContextFromContext(ctx).TraceID()
	id := m.Header.Get(eventbus.HeaderMsgID)
	return w.loseAck[id] && m.Delivery == 1
}

func (w *wrapper[T]) calls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.handled {
		n += v
	}
	return n
}

// Handle implements consumer.Handler.
func (w *wrapper[T]) Handle(ctx context.Context, m *consumer.Message[T]) error {
	lose := w.note(ctx, m)
	if err := w.single.Handle(ctx, m); err != nil || !lose {
		return err
	}
	return errLostAck
}

// HandleBatch implements consumer.BatchHandler.
func (w *wrapper[T]) HandleBatch(ctx context.Context, batch []*consumer.Message[T]) []error {
	lose := make([]bool, len(batch))
	for i, m := range batch {
		lose[i] = w.note(ctx, m)
	}
	errs := w.batch.HandleBatch(ctx, batch)
	if errs == nil {
		errs = make([]error, len(batch))
	}
	if len(errs) == len(batch) {
		for i := range errs {
			if errs[i] == nil && lose[i] {
				errs[i] = errLostAck
			}
		}
	}
	return errs
}

// sub collects messages of a core subscription.
type sub struct {
	ch   chan *nats.Msg
	mu   sync.Mutex
	seen []*eventsv1.Outcome
}

func subscribe(t testing.TB, nc *nats.Conn, subject string) *sub {
	t.Helper()
	s := &sub{ch: make(chan *nats.Msg, 4096)}
	ns, err := nc.ChanSubscribe(subject, s.ch)
	if err != nil {
		t.Fatalf("consumertest: subscribe %s: %v", subject, err)
	}
	t.Cleanup(func() { _ = ns.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *sub) nextMsg(t testing.TB) *nats.Msg {
	t.Helper()
	select {
	case m := <-s.ch:
		return m
	case <-time.After(WaitTimeout):
		t.Fatal("consumertest: timed out waiting for a message")
		return nil
	}
}

func (s *sub) next(t testing.TB) *eventsv1.Outcome {
	t.Helper()
	m := s.nextMsg(t)
	o := &eventsv1.Outcome{}
	if err := proto.Unmarshal(m.Data, o); err != nil {
		t.Fatalf("consumertest: outcome: %v", err)
	}
	s.mu.Lock()
	s.seen = append(s.seen, o)
	s.mu.Unlock()
	return o
}

func (s *sub) all() []*eventsv1.Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*eventsv1.Outcome(nil), s.seen...)
}
