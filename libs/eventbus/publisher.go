package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ErrNotConfirmed is returned when JetStream did not confirm a publish
// before the context ended. The message may still be stored later (it can sit
// in the client's reconnect buffer); callers must treat it as "not accepted".
var ErrNotConfirmed = errors.New("eventbus: publish not confirmed by JetStream")

// ErrNoStream is returned when no stream listens on the subject (NATS
// answered "no responders").
var ErrNoStream = errors.New("eventbus: no stream stores this subject")

// Message is one message to publish.
type Message struct {
	// Subject is required; build it with the subject functions of this package.
	Subject string
	// MsgID is the de-duplication id (Nats-Msg-Id). Optional but every b24hub
	// publisher sets one.
	MsgID string
	// Data is the payload. Publish has copied it into the connection's
	// buffers by the time it returns, so the caller may reuse it then.
	Data []byte
	// Header is optional extra headers; the trace context and the message id
	// are added to it.
	Header nats.Header
}

// Publisher publishes to JetStream with the trace context injected and a
// producer span per message. Safe for concurrent use; many goroutines
// publishing at once is what it is built for.
//
// Publishes are pipelined and coalesced. Each caller waits only for its own
// PubAck, not for a round trip in turn. The messages of callers that arrive
// together are written to the connection by one goroutine in one burst, so
// the NATS client sends them in one socket write and the server reads them
// in one, instead of one write and one read per message (which is what the
// client does when each caller publishes on its own: its flusher goroutine
// runs as soon as the publishing goroutine blocks). PubAcks come back on one
// reply subscription per Publisher.
//
// Why not the library's jetstream.PublishMsgAsync, with
// WithPublishAsyncMaxPending and WithPublishAsyncTimeout, each caller
// waiting for its own future: measured side by side, that thin wrapper
// costs more CPU per message. BenchmarkPublishPaths (64 publishers, 1 KiB
// messages, embedded broker; six interleaved runs of `go test -run '^$'
// -bench PublishPaths -benchtime 20000x` on the 2-core shared machine of
// docs/benchmarks.md, which names the commit) gave 30.2 µs of CPU per
// message here, 37.8 through the library (1.26× ± 0.07) and 41.8
// publishing synchronously; the ingress on each (`go run ./tools/bench
// ingress -paths ingress,async`, alternating rounds at 64 connections)
// used 1.11× ± 0.05 the CPU per request on the library in two runs of 6
// and 10 rounds, outside the 5% it would have to be within to replace
// this. The library sends each message on its own (no coalescing), starts
// a timer per message for its timeout and decodes every PubAck with
// encoding/json. Lost PubAcks are handled the same way by both: the
// publish ends with ErrNotConfirmed and a retry with the same Nats-Msg-Id
// is confirmed as a duplicate (TestLostPubAckRetriedIsStoredOnce).
type Publisher struct {
	js     jetstream.JetStream
	nc     *nats.Conn
	tracer trace.Tracer
	prop   propagation.TextMapPropagator

	// timeout bounds each Publish (WithConfirmTimeout); 0: only ctx does.
	timeout time.Duration

	// Replies: inbox prefix, the waiting publishes by reply token. A
	// publish leaves waiting exactly once, under replyMu, and whoever
	// removes it (the reply, the reaper, a failed send) is the one who
	// delivers its outcome.
	replyMu  sync.Mutex
	inbox    string // "<inbox>." once subscribed
	waiting  map[uint64]*publish
	nextID   atomic.Uint64
	replySub *nats.Subscription
	reaping  bool // the reaper goroutine runs

	// The pump: publishes not yet handed to the connection.
	pumpMu  sync.Mutex
	queue   []*publish
	pumping bool
}

// publish is one message in flight.
type publish struct {
	id  uint64
	msg *nats.Msg
	// deadline is when the reaper gives up on it (zero: never).
	deadline time.Time
	// done receives the outcome (buffered: the sender never blocks).
	done chan pubResult
	// sent is set, under pumpMu, when the pump takes the message; it is
	// closed once the message is in the connection's buffer.
	sent chan struct{}
}

type pubResult struct {
	ack *jetstream.PubAck
	err error
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithTracerProvider sets the tracer provider (default: the global one).
func WithTracerProvider(tp trace.TracerProvider) PublisherOption {
	return func(p *Publisher) { p.tracer = tp.Tracer("github.com/b24hub/b24hub/libs/eventbus") }
}

// WithConfirmTimeout bounds how long Publish waits for JetStream's answer,
// no-responder retries included: past d it returns ErrNotConfirmed, as when
// ctx ends. Unlike a context deadline it costs no timer and no context per
// message: while any publish waits, one goroutine checks the waiting ones
// every d/100, so a publish gives up between d and 1.01·d.
func WithConfirmTimeout(d time.Duration) PublisherOption {
	return func(p *Publisher) { p.timeout = d }
}

// NewPublisher returns a Publisher on js's connection.
func NewPublisher(js jetstream.JetStream, opts ...PublisherOption) *Publisher {
	p := &Publisher{js: js, nc: js.Conn(), prop: Propagator(), waiting: map[uint64]*publish{}}
	for _, o := range opts {
		o(p)
	}
	if p.tracer == nil {
		p.tracer = otel.GetTracerProvider().Tracer("github.com/b24hub/b24hub/libs/eventbus")
	}
	return p
}

// JetStream returns the underlying JetStream context.
func (p *Publisher) JetStream() jetstream.JetStream { return p.js }

// Publish stores m and returns its PubAck once JetStream confirmed it. A
// duplicate within the stream's window is confirmed too (PubAck.Duplicate).
// It returns ErrNotConfirmed (wrapped) when ctx ends first, the confirm
// timeout passes or the message could not be sent, ErrNoStream when no
// stream took the subject for noStreamPatience (as right after a broker
// restart, before JetStream has recovered its streams: the message is sent
// again meanwhile), and the server's *jetstream.APIError when JetStream
// rejected the message.
func (p *Publisher) Publish(ctx context.Context, m Message) (*jetstream.PubAck, error) {
	ctx, span := p.tracer.Start(ctx, publishSpanName(m.Subject), producerSpan...)
	defer span.End()
	// All attributes are set in one call at the end: one allocation for
	// the span's attribute slice instead of one per call. The array comes
	// from a pool: passed to an interface method it escapes, and the span
	// has copied it when SetAttributes returns. None of it when the span
	// records nothing (no exporter, telemetry.Setup).
	var attrs []attribute.KeyValue
	if span.IsRecording() {
		spanAttrs := attrPool.Get().(*publishAttrs)
		attrs = append(spanAttrs[:0],
			attribute.String("messaging.system", "nats"),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(m.Subject),
			semconv.MessagingMessageID(m.MsgID),
			semconv.MessagingMessageBodySize(len(m.Data)),
		)
		defer func() {
			span.SetAttributes(attrs...)
			*spanAttrs = publishAttrs{}
			attrPool.Put(spanAttrs)
		}()
	}
	fail := func(err error, status string) (*jetstream.PubAck, error) {
		span.RecordError(err)
		span.SetStatus(codes.Error, status)
		return nil, err
	}

	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrNotConfirmed, err), "not confirmed")
	}
	msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}
	if msg.Header == nil {
		msg.Header = make(nats.Header, 4)
	}
	p.prop.Inject(ctx, HeaderCarrier(msg.Header))
	if m.MsgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, m.MsgID)
	}
	r, err := p.send(ctx, msg)
	switch {
	case err != nil:
		return fail(err, "not confirmed")
	case r.err != nil:
		if errors.Is(r.err, ErrNotConfirmed) {
			return fail(r.err, r.err.Error())
		}
		return fail(fmt.Errorf("eventbus: publish %s: %w", m.Subject, r.err), r.err.Error())
	}
	if attrs != nil {
		attrs = append(attrs,
			attribute.Int64("messaging.nats.stream_sequence", int64(r.ack.Sequence)),
			attribute.Bool("messaging.nats.duplicate", r.ack.Duplicate))
	}
	return r.ack, nil
}

// producerSpan are the options of every publish span, shared so they
// cost no allocation.
var producerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}

// publishAttrs holds a producer span's attributes: six, and the stream
// sequence and duplicate flag once confirmed.
type publishAttrs [8]attribute.KeyValue

var attrPool = sync.Pool{New: func() any { return new(publishAttrs) }}

// noStreamPatience is how long a publish keeps trying while NATS answers
// that no stream takes the subject. Right after a broker (re)start the
// server accepts connections before JetStream has recovered its streams,
// and a publish in that window would otherwise fail although the stream
// is about to be there; a subject no stream will ever take fails after
// this long.
const noStreamPatience = 2 * time.Second

// send publishes msg and waits for JetStream's answer. On "no responders"
// it publishes again, after about 100 ms and then doubling, jittered waits
// (noStreamBackOff), for up to noStreamPatience. It returns an error
// (wrapping ErrNotConfirmed) only when the message could not be handed
// over, or ctx or the confirm timeout ended first.
func (p *Publisher) send(ctx context.Context, msg *nats.Msg) (pubResult, error) {
	var first, deadline time.Time
	if p.timeout > 0 {
		deadline = time.Now().Add(p.timeout)
	}
	var retry backoff.BackOff // made on the first "no stream" only: the hot path never needs it
	for {
		pub, err := p.register(msg, deadline)
		if err != nil {
			return pubResult{}, fmt.Errorf("%w: %w", ErrNotConfirmed, err)
		}
		p.enqueue(pub)
		var r pubResult
		select {
		case r = <-pub.done:
		case <-ctx.Done():
			p.withdraw(pub)
			return pubResult{}, fmt.Errorf("%w: %w", ErrNotConfirmed, ctx.Err())
		}
		if r.err == errExpired {
			p.withdraw(pub)
			return pubResult{}, fmt.Errorf("%w: no answer within %s", ErrNotConfirmed, p.timeout)
		}
		if !errors.Is(r.err, ErrNoStream) {
			return r, nil
		}
		if first.IsZero() {
			first, retry = time.Now(), noStreamBackOff()
		}
		wait := retry.NextBackOff()
		if wait == backoff.Stop || time.Since(first)+wait > noStreamPatience || (!deadline.IsZero() && time.Until(deadline) < wait) {
			return r, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r, nil
		}
	}
}

// noStreamBackOff spaces the publishes of a message no stream took yet:
// from 100 ms, doubling, jittered by ±20% so that the publishes of many
// callers waiting for the same stream do not arrive together.
func noStreamBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond), backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.2), backoff.WithMaxInterval(noStreamPatience), backoff.WithMaxElapsedTime(noStreamPatience))
}

// errExpired is the outcome the reaper gives a publish past its deadline.
var errExpired = errors.New("eventbus: confirm timeout")

// register gives msg a reply subject on the Publisher's inbox and records
// it as waiting, until deadline when that is not zero. The inbox
// subscription is made on first use (and again after a failure, so a
// connection that was down at first recovers).
func (p *Publisher) register(msg *nats.Msg, deadline time.Time) (*publish, error) {
	p.replyMu.Lock()
	defer p.replyMu.Unlock()
	if p.replySub == nil {
		inbox := p.nc.NewInbox() + "."
		sub, err := p.nc.Subscribe(inbox+"*", p.onReply)
		if err != nil {
			return nil, fmt.Errorf("reply subscription: %w", err)
		}
		// Acks must never be dropped as a slow consumer's: a lost ack
		// turns a stored event into a 503.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			_ = sub.Unsubscribe()
			return nil, fmt.Errorf("reply subscription: %w", err)
		}
		p.inbox, p.replySub = inbox, sub
	}
	pub := &publish{id: p.nextID.Add(1), msg: msg, deadline: deadline, done: make(chan pubResult, 1)}
	msg.Reply = p.inbox + strconv.FormatUint(pub.id, 36)
	p.waiting[pub.id] = pub
	if !deadline.IsZero() && !p.reaping {
		p.reaping = true
		go p.reap()
	}
	return pub, nil
}

// reap gives errExpired to every waiting publish past its deadline. It
// runs while any publish waits (the last one out stops it), checking every
// hundredth of the confirm timeout.
func (p *Publisher) reap() {
	t := time.NewTicker(max(p.timeout/100, time.Millisecond))
	defer t.Stop()
	var expired []*publish
	for now := range t.C {
		p.replyMu.Lock()
		for id, pub := range p.waiting {
			if !pub.deadline.IsZero() && now.After(pub.deadline) {
				delete(p.waiting, id)
				expired = append(expired, pub)
			}
		}
		idle := len(p.waiting) == 0
		if idle {
			p.reaping = false
		}
		p.replyMu.Unlock()
		for _, pub := range expired {
			pub.done <- pubResult{err: errExpired}
		}
		expired = expired[:0]
		if idle {
			return
		}
	}
}

// onReply delivers a PubAck (or an error) to the publish waiting for it.
// Replies for publishes that gave up waiting are dropped.
func (p *Publisher) onReply(m *nats.Msg) {
	p.replyMu.Lock()
	var pub *publish
	if len(m.Subject) > len(p.inbox) {
		if id, err := strconv.ParseUint(m.Subject[len(p.inbox):], 36, 64); err == nil {
			pub = p.waiting[id]
			delete(p.waiting, id)
		}
	}
	p.replyMu.Unlock()
	if pub != nil {
		pub.done <- parsePubAck(m)
	}
}

// parsePubAck reads JetStream's answer to a publish.
func parsePubAck(m *nats.Msg) pubResult {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return pubResult{err: ErrNoStream}
	}
	if ack, ok := scanPubAck(m.Data); ok {
		return pubResult{ack: ack}
	}
	var resp struct {
		jetstream.PubAck
		Error *jetstream.APIError `json:"error,omitempty"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return pubResult{err: fmt.Errorf("%w: unreadable PubAck: %w", ErrNotConfirmed, err)}
	}
	if resp.Error != nil {
		return pubResult{err: resp.Error}
	}
	if resp.Stream == "" {
		return pubResult{err: fmt.Errorf("%w: PubAck without a stream", ErrNotConfirmed)}
	}
	return pubResult{ack: &resp.PubAck}
}

// scanPubAck reads the PubAck of a plain publish in the exact forms
// nats-server writes it — {"stream":S,"seq":N} or {"stream":S,"domain":D,
// "seq":N}, optionally followed by ,"duplicate": true — without
// reflection. Anything else (an error, other fields, an escape in a name)
// reports false and is left to encoding/json. FuzzScanPubAck holds it to
// encoding/json's reading.
func scanPubAck(b []byte) (*jetstream.PubAck, bool) {
	var ack jetstream.PubAck
	var ok bool
	if b, ok = cutPrefix(b, `{"stream":"`); !ok {
		return nil, false
	}
	if ack.Stream, b, ok = scanName(b); !ok || ack.Stream == "" {
		return nil, false
	}
	if rest, found := cutPrefix(b, `,"domain":"`); found {
		if ack.Domain, b, ok = scanName(rest); !ok {
			return nil, false
		}
	}
	if b, ok = cutPrefix(b, `,"seq":`); !ok {
		return nil, false
	}
	n := 0
	for n < len(b) && n < 20 && '0' <= b[n] && b[n] <= '9' {
		n++
	}
	if n == 0 || (n > 1 && b[0] == '0') {
		return nil, false
	}
	seq, err := strconv.ParseUint(string(b[:n]), 10, 64)
	if err != nil {
		return nil, false
	}
	ack.Sequence = seq
	switch string(b[n:]) {
	case "}":
	case `,"duplicate": true}`, `,"duplicate":true}`:
		ack.Duplicate = true
	default:
		return nil, false
	}
	return &ack, true
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return b, false
	}
	return b[len(prefix):], true
}

// scanName reads a JSON string body up to its closing quote. Only
// printable ASCII without escapes is taken (stream and domain names are
// that); anything else is left to encoding/json.
func scanName(b []byte) (string, []byte, bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return string(b[:i]), b[i+1:], true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return "", b, false
		}
	}
	return "", b, false
}

// enqueue queues pub for the pump, starting one if none runs.
func (p *Publisher) enqueue(pub *publish) {
	p.pumpMu.Lock()
	p.queue = append(p.queue, pub)
	start := !p.pumping
	p.pumping = true
	p.pumpMu.Unlock()
	if start {
		go p.pump()
	}
}

// pump hands queued messages to the connection in bursts until the queue
// is empty, then exits. Before each burst it yields once, so publishers
// that are runnable at that moment queue their messages first and go out
// in the same socket write; when nothing else is runnable the yield
// returns at once and a lone message is not delayed.
func (p *Publisher) pump() {
	var burst []*publish
	for {
		runtime.Gosched()
		p.pumpMu.Lock()
		burst, p.queue = p.queue, burst[:0]
		if len(burst) == 0 {
			p.pumping = false
			p.pumpMu.Unlock()
			return
		}
		sent := make(chan struct{})
		for _, pub := range burst {
			pub.sent = sent
		}
		p.pumpMu.Unlock()
		for _, pub := range burst {
			if err := p.nc.PublishMsg(pub.msg); err != nil && p.forget(pub.id) {
				pub.done <- pubResult{err: fmt.Errorf("%w: %w", ErrNotConfirmed, err)}
			}
		}
		close(sent)
		clear(burst)
	}
}

// withdraw is called when a publish stops waiting. A message still queued
// is removed and never sent; one the pump has taken is waited for until it
// is in the connection's buffer, so the caller may reuse its data once
// Publish returns.
func (p *Publisher) withdraw(pub *publish) {
	p.forget(pub.id)
	p.pumpMu.Lock()
	sent := pub.sent
	if sent == nil {
		for i, q := range p.queue {
			if q == pub {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				break
			}
		}
	}
	p.pumpMu.Unlock()
	if sent != nil {
		<-sent
	}
}

// forget drops a publish from the reply table and reports whether it was
// still there, that is, whether the caller is now the one to deliver its
// outcome.
func (p *Publisher) forget(id uint64) bool {
	p.replyMu.Lock()
	defer p.replyMu.Unlock()
	_, ok := p.waiting[id]
	delete(p.waiting, id)
	return ok
}

// publishSpanName names a producer span after the subject's
// low-cardinality family (portal ids and entity ids never go into a span
// name): "publish b24.events", and "publish b24" for any other subject.
// The names are constants, not built per message.
func publishSpanName(subject string) string {
	for _, f := range subjectFamilies {
		if len(subject) > len(f.prefix) && subject[:len(f.prefix)] == f.prefix && subject[len(f.prefix)] == '.' {
			return f.span
		}
	}
	return "publish b24"
}

var subjectFamilies = [...]struct{ prefix, span string }{
	{EventsPrefix, "publish " + EventsPrefix},
	{ChangesPrefix, "publish " + ChangesPrefix},
	{CommandsPrefix, "publish " + CommandsPrefix},
	{OutcomesPrefix, "publish " + OutcomesPrefix},
	{DeadPrefix, "publish " + DeadPrefix},
}
