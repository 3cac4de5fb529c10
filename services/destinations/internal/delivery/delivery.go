// Package delivery runs one destination: its durable JetStream consumer,
// per-entity ordered workers, signed requests with retries, dead letters
// and an outcome per attempt for the monitor's ledger.
//
// Each destination has its own durable ("dest-<name>"), its own workers
// and its own rate limiter, so a slow or dead destination holds back only
// itself. Messages of one entity always go to the same worker, which
// handles them one after another: per-entity order holds for a destination.
// The consumer uses a pinned priority group, so with several replicas one
// replica at a time delivers a destination and the order still holds.
package delivery

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/destinations/internal/destfile"
	"github.com/b24hub/b24hub/services/destinations/internal/webhook"
	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Group is the pinned priority group every replica pulls with.
const Group = "deliver"

// Publisher stores dead letters and outcomes.
type Publisher interface {
	Publish(ctx context.Context, m eventbus.Message) (*jetstream.PubAck, error)
}

// Runner delivers one destination.
type Runner struct {
	d      destfile.Destination
	js     jetstream.JetStream
	pub    Publisher
	sender *webhook.Sender
	log    *slog.Logger
	lim    *rate.Limiter
	o      Options
	brk    *breaker
	// Backoff builds the retry schedule of one delivery; tests shorten it.
	backoff func() backoff.BackOff
}

// Options tune a Runner. Zero values take the defaults.
type Options struct {
	// InitialInterval is the first retry delay (default 1s); delays double
	// with ±50% jitter up to MaxInterval (default 5m), for the
	// destination's RetryFor.
	InitialInterval, MaxInterval time.Duration
	// PauseAfter is how many failed attempts in a row (no success between
	// them, across the destination's workers) pause the destination: the
	// circuit breaker. Default 10.
	PauseAfter int
	// ProbeInterval is how long a pause lasts before deliveries are tried
	// again (default 30s).
	ProbeInterval time.Duration
	// AckWait is the durable's ack wait (default 30s); every message the
	// runner holds is marked in progress every AckWait/3.
	AckWait time.Duration
	// PinnedTTL is how long a replica that stopped without a goodbye keeps
	// the pin (default 2m); tests shorten it.
	PinnedTTL time.Duration
	// OnState is called when the breaker changes state (the metric).
	// Optional.
	OnState func(State)
}

func (o Options) withDefaults() Options {
	if o.InitialInterval <= 0 {
		o.InitialInterval = time.Second
	}
	if o.MaxInterval <= 0 {
		o.MaxInterval = 5 * time.Minute
	}
	if o.PauseAfter <= 0 {
		o.PauseAfter = 10
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 30 * time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.PinnedTTL <= 0 {
		o.PinnedTTL = 2 * time.Minute
	}
	return o
}

// NewRunner returns a Runner for d.
func NewRunner(d destfile.Destination, js jetstream.JetStream, pub Publisher, sender *webhook.Sender, log *slog.Logger, o Options) *Runner {
	o = o.withDefaults()
	burst := max(1, int(d.Rate))
	return &Runner{
		d: d, js: js, pub: pub, sender: sender, lim: rate.NewLimiter(rate.Limit(d.Rate), burst), o: o,
		brk: newBreaker(o.PauseAfter, o.ProbeInterval, o.OnState),
		log: log.With("destination", d.Name, "consumer", d.Durable()),
		backoff: func() backoff.BackOff {
			b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(o.InitialInterval),
				backoff.WithMaxInterval(o.MaxInterval), backoff.WithMaxElapsedTime(d.RetryFor),
				backoff.WithRandomizationFactor(0.5), backoff.WithMultiplier(2))
			return b
		},
	}
}

// Status is the destination's circuit breaker now.
func (r *Runner) Status() Status { return r.brk.status() }

// ConsumerConfig is the destination's durable consumer with the default
// options.
func ConsumerConfig(d destfile.Destination) jetstream.ConsumerConfig {
	return consumerConfig(d, Options{}.withDefaults())
}

func consumerConfig(d destfile.Destination, o Options) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        d.Durable(),
		Description:    "HTTP destination " + d.Name + " (" + d.URL.Host + ")",
		FilterSubjects: d.Subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        o.AckWait,
		MaxDeliver:     -1,
		// A destination starts with what arrives after it is declared; its
		// position survives restarts and reloads.
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		MaxAckPending:  max(64, d.Concurrency*32),
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{Group},
		PinnedTTL:      o.PinnedTTL,
	}
}

// errPaused ends a session when the circuit opens.
var errPaused = errors.New("destination paused")

// Run provisions the durable and delivers until ctx ends. Messages not yet
// delivered at shutdown are handed back in stream order, so the next
// replica resumes them in order at once. When the circuit breaker opens,
// the durable is paused on the server (every replica stops receiving it),
// the messages in hand go back in order, and delivery resumes when the
// pause ends.
func (r *Runner) Run(ctx context.Context) error {
	cfg := consumerConfig(r.d, r.o)
	if info, err := r.js.Consumer(ctx, r.d.Stream, r.d.Durable()); err == nil && info.CachedInfo().Paused {
		// Keep a breaker's pause across a restart or a reload: updating
		// the durable without it would resume it.
		until := time.Now().Add(info.CachedInfo().PauseRemaining)
		cfg.PauseUntil = &until
		r.brk.resume(until)
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, r.d.Stream, cfg)
	if err != nil {
		return fmt.Errorf("destination %s: consumer: %w", r.d.Name, err)
	}
	r.log.InfoContext(ctx, "destination delivering", "url", r.d.URL.Redacted(), "subjects", r.d.Subjects)
	for ctx.Err() == nil {
		if st := r.brk.status(); st.State == StatePaused {
			select {
			case <-ctx.Done():
				continue
			case <-time.After(time.Until(st.PausedUntil)):
			}
			r.brk.probing()
			r.log.InfoContext(ctx, "destination pause over; probing")
		}
		if err := r.session(ctx, cons); err != nil && !errors.Is(err, errPaused) {
			return err
		}
	}
	// Hand the pin over now rather than after PinnedTTL, so the replica
	// that takes over (or this one, restarted) resumes at once.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if st, err := r.js.Stream(uctx, r.d.Stream); err == nil {
		if err := st.UnpinConsumer(uctx, r.d.Durable(), Group); err != nil {
			r.log.WarnContext(ctx, "unpin failed; another replica takes over after the pinned TTL", "error", err)
		}
	}
	return nil
}

// session pulls and delivers until ctx ends (nil) or the circuit opens
// (errPaused). Every message it holds goes back in stream order at the end.
func (r *Runner) session(ctx context.Context, cons jetstream.Consumer) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	it, err := cons.Messages(jetstream.PullPriorityGroup(Group), jetstream.PullMaxMessages(max(16, r.d.Concurrency*4)))
	if err != nil {
		return fmt.Errorf("destination %s: pull: %w", r.d.Name, err)
	}
	held := newHeld()
	go held.keepInProgress(sctx, r.o.AckWait/3)
	queues := make([]chan jetstream.Msg, r.d.Concurrency)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan jetstream.Msg, 64)
		wg.Add(1)
		go func(q chan jetstream.Msg) {
			defer wg.Done()
			for m := range q {
				if sctx.Err() == nil && r.deliver(sctx, m, cancel) {
					held.remove(m)
				}
			}
		}(queues[i])
	}
	msgs := make(chan jetstream.Msg)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				if sctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				r.log.WarnContext(sctx, "pull failed", "error", err)
				continue
			}
			select {
			case msgs <- m:
			case <-sctx.Done():
				held.add(m) // handed back below
				return
			}
		}
	}()
	dispatch := func(m jetstream.Msg) { queues[partition(EntityKey(m), len(queues))] <- m }
	for _, m := range r.gather(sctx, cons, msgs, held) {
		dispatch(m)
	}
loop:
	for sctx.Err() == nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				break loop
			}
			held.add(m)
			dispatch(m)
		case <-sctx.Done():
		}
	}
	it.Stop()
	for m := range msgs {
		held.add(m) // in hand when the iterator stopped
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	// Everything still held (delivering, queued or gathered) goes back in
	// stream order.
	for _, m := range held.sorted() {
		_ = m.Nak()
	}
	if errors.Is(context.Cause(sctx), errPaused) {
		return errPaused
	}
	return nil
}

// gather restores per-entity order after another process stopped without
// handing its messages back (a crash, a lost connection): those messages
// come back only as their ack wait runs out, in no useful order, while
// later messages of the same entities may already be flowing. When the
// durable has unacknowledged messages at the start, gather holds
// everything it receives until it holds every unacknowledged message
// (the server's count equals its own), then returns them in stream order.
// It returns nil when nothing was pending.
func (r *Runner) gather(ctx context.Context, cons jetstream.Consumer, msgs <-chan jetstream.Msg, held *held) []jetstream.Msg {
	info, err := cons.Info(ctx)
	if err != nil || info.NumAckPending == 0 {
		return nil
	}
	r.log.InfoContext(ctx, "unacknowledged messages from an earlier run; gathering them to resume in order", "pending", info.NumAckPending)
	check := time.NewTicker(100 * time.Millisecond)
	defer check.Stop()
	// A message acknowledged elsewhere meanwhile would make the count
	// unreachable: after twice the ack wait every redelivery has come.
	deadline := time.After(2*r.o.AckWait + 5*time.Second)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			held.add(m)
			continue
		case <-check.C:
			info, err := cons.Info(ctx)
			if err != nil || info.NumAckPending > held.len() {
				continue
			}
		case <-deadline:
			r.log.WarnContext(ctx, "not every unacknowledged message came back; resuming with those held")
		}
		ms := held.sorted()
		r.log.InfoContext(ctx, "resuming in stream order", "messages", len(ms))
		return ms
	}
}

func seq(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

func partition(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// EntityKey is what per-entity order is kept for: a change's subject
// (type, portal, entity), or a raw event's portal and entity id (its
// subject when the event names no entity).
func EntityKey(m jetstream.Msg) string {
	if id := m.Headers().Get(eventbus.HeaderEntityID); id != "" {
		return m.Headers().Get(eventbus.HeaderMemberID) + "/" + id
	}
	return m.Subject()
}

// DeliveryID is the stable webhook-id of a message for a destination: the
// same on every attempt, replica, restart and replay, different per
// destination.
func DeliveryID(destination string, m jetstream.Msg) string {
	return deliveryID(destination, m.Headers(), m.Subject(), seq(m))
}

func deliveryID(destination string, h nats.Header, subject string, seq uint64) string {
	src := h.Get(eventbus.HeaderMsgID)
	if src == "" {
		src = subject + "#" + strconv.FormatUint(seq, 10)
	}
	sum := sha256.Sum256([]byte(destination + "\x00" + src))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// Body is the JSON a destination receives: the Standard Webhooks envelope
// with the event or change as protobuf JSON in data.
type Body struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Subject   string          `json:"subject"`
	Data      json.RawMessage `json:"data"`
}

// EncodeBody turns a stored message into the request body. A payload that
// does not decode is an error: it is dead-lettered, never retried.
func EncodeBody(m jetstream.Msg) ([]byte, error) {
	ts := time.Now()
	if md, err := m.Metadata(); err == nil {
		ts = md.Timestamp
	}
	return encodeBody(m.Subject(), m.Data(), ts)
}

func encodeBody(subject string, payload []byte, ts time.Time) ([]byte, error) {
	var (
		msg proto.Message
		typ string
	)
	switch {
	case strings.HasPrefix(subject, eventbus.ChangesPrefix+"."):
		msg = &eventsv1.DomainChange{}
		typ = "b24.change." + strings.Split(subject, ".")[2]
	case strings.HasPrefix(subject, eventbus.EventsPrefix+"."):
		_, ev, err := eventbus.ParseRawEvent(subject)
		if err != nil {
			return nil, err
		}
		msg = &eventsv1.Envelope{}
		typ = "b24.event." + ev
	default:
		return nil, fmt.Errorf("subject %q is neither an event nor a change", subject)
	}
	if err := proto.Unmarshal(payload, msg); err != nil {
		return nil, fmt.Errorf("undecodable payload: %w", err)
	}
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return json.Marshal(Body{Type: typ, Timestamp: ts.UTC(), Subject: subject, Data: data})
}

// deliver sends m until it is delivered, dead-lettered, or ctx ends. It
// reports false when the message was left unsettled (shutdown, or the
// circuit opened: then it calls pause).
func (r *Runner) deliver(ctx context.Context, m jetstream.Msg, pause context.CancelCauseFunc) bool {
	id := DeliveryID(r.d.Name, m)
	log := r.log.With("webhook_id", id, "subject", m.Subject())
	body, err := EncodeBody(m)
	if err != nil {
		r.dead(ctx, m, "undecodable", err, 0)
		return true
	}
	hdr := traceHeader(ctx, m.Headers())
	b := r.backoff()
	for attempt := 1; ; attempt++ {
		if err := r.lim.Wait(ctx); err != nil {
			return false
		}
		res := r.sender.Send(ctx, webhook.Request{URL: r.d.URL.String(), ID: id, Body: body, Keys: r.d.Secrets, Header: hdr}, r.d.Timeout)
		if ctx.Err() != nil {
			return false
		}
		if res.Err == nil {
			r.brk.success()
			r.outcome(ctx, fromMsg(m), eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, attempt, res, "")
			if err := m.DoubleAck(ctx); err != nil {
				log.WarnContext(ctx, "ack failed; the receiver may see this delivery again", "error", err)
			}
			log.DebugContext(ctx, "delivered", "status", res.Status, "attempt", attempt, "latency_ms", res.Latency.Milliseconds())
			return true
		}
		if res.Status != http.StatusTooManyRequests && r.trip(ctx, pause) {
			// Not dead-lettered, whatever the status: the endpoint is
			// failing as a whole; the message waits for the pause to end.
			r.outcome(ctx, fromMsg(m), eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, attempt, res, retryKind(res))
			return false
		}
		if res.Permanent {
			r.outcome(ctx, fromMsg(m), eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, attempt, res, "permanent")
			r.dead(ctx, m, "permanent", res.Err, attempt)
			return true
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			r.outcome(ctx, fromMsg(m), eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, attempt, res, "max_deliveries")
			r.dead(ctx, m, "max_deliveries", res.Err, attempt)
			return true
		}
		if res.RetryAfter > wait {
			wait = min(res.RetryAfter, time.Hour)
		}
		r.outcome(ctx, fromMsg(m), eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, attempt, res, retryKind(res))
		log.WarnContext(ctx, "delivery failed; will retry", "status", res.Status, "attempt", attempt, "error", res.Err.Error(), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// retryKind is the outcome's error kind for a failed attempt that is
// retried: "unavailable" when the receiver did not answer or is
// overloaded, "transient" otherwise.
func retryKind(res webhook.Result) string {
	if res.Unavailable() {
		return eventbus.ErrorKindUnavailable
	}
	return eventbus.ErrorKindTransient
}

// trip counts a failed attempt; when it opens the circuit, the durable is
// paused on the server until the probe time and the session is ended
// (pause). It reports whether the circuit is open.
func (r *Runner) trip(ctx context.Context, pause context.CancelCauseFunc) bool {
	open, until := r.brk.failure(time.Now())
	if !open {
		return ctx.Err() != nil && errors.Is(context.Cause(ctx), errPaused)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := r.js.PauseConsumer(pctx, r.d.Stream, r.d.Durable(), until); err != nil {
		// This replica still stops; another one may deliver meanwhile.
		r.log.ErrorContext(ctx, "pausing the durable failed", "error", err)
	}
	r.log.ErrorContext(ctx, "destination keeps failing; paused", "failures", r.o.PauseAfter, "until", until.UTC().Format(time.RFC3339))
	pause(errPaused)
	return true
}

// outcome reports one attempt to the monitor as the internal consumers do
// (b24.outcomes.<durable>.<member>): the ledger, dashboard and replay show
// destinations per consumer. A failure to publish is logged only.
func (r *Runner) outcome(ctx context.Context, m message, st eventsv1.OutcomeStatus, attempt int, res webhook.Result, kind string) {
	member, event := memberEvent(m)
	o := &eventsv1.Outcome{
		EventId: cmp.Or(m.replayID, m.header.Get(eventbus.HeaderMsgID)), Consumer: r.d.Durable(), Status: st,
		Attempt: uint32(attempt), Duration: durationpb.New(res.Latency), MemberId: member, Event: event,
		EntityId: m.header.Get(eventbus.HeaderEntityID), At: timestamppb.Now(),
	}
	if res.Err != nil {
		o.Error = fmt.Sprintf("HTTP %d: %v", res.Status, res.Err)
		if res.Status == 0 {
			o.Error = res.Err.Error()
		}
		o.ErrorKind = kind
	}
	data, err := proto.Marshal(o)
	if err != nil {
		return
	}
	// A replay's attempts are new outcomes, not duplicates of the first
	// delivery's.
	attemptID := strconv.Itoa(attempt)
	if m.replay != "" {
		attemptID = m.replay + ":" + attemptID
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	h := nats.Header{}
	h.Set(eventbus.HeaderContentType, eventbus.ContentTypeProtobuf)
	if _, err := r.pub.Publish(pctx, eventbus.Message{
		Subject: eventbus.Outcome(r.d.Durable(), token(member)),
		MsgID:   fmt.Sprintf("outcome:%s:%s:%s", r.d.Durable(), deliveryID(r.d.Name, m.header, m.subject, m.seq), attemptID),
		Data:    data, Header: h,
	}); err != nil {
		r.log.WarnContext(ctx, "outcome not published", "error", err)
	}
}

// dead stores the message on the dead-letter stream and terminates it.
func (r *Runner) dead(ctx context.Context, m jetstream.Msg, reason string, cause error, attempts int) {
	member, event := memberEvent(fromMsg(m))
	h := nats.Header{}
	for k, v := range m.Headers() {
		if k != eventbus.HeaderMsgID {
			h[k] = slices.Clone(v)
		}
	}
	h.Set(eventbus.HeaderOriginalMsgID, m.Headers().Get(eventbus.HeaderMsgID))
	h.Set(eventbus.HeaderDeadReason, reason)
	h.Set(eventbus.HeaderDeadError, truncate(cause.Error(), 1024))
	h.Set(eventbus.HeaderDeadConsumer, r.d.Durable())
	h.Set(eventbus.HeaderDeadDeliveries, strconv.Itoa(attempts))
	h.Set(eventbus.HeaderDeadSubject, m.Subject())
	h.Set(eventbus.HeaderDeadStream, r.d.Stream)
	h.Set(eventbus.HeaderDeadStreamSeq, strconv.FormatUint(seq(m), 10))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := r.pub.Publish(pctx, eventbus.Message{
		Subject: eventbus.Dead(r.d.Durable(), token(member), token(event)),
		MsgID:   fmt.Sprintf("dead:%s:%s:%d", r.d.Durable(), r.d.Stream, seq(m)),
		Data:    m.Data(), Header: h,
	})
	if err != nil {
		// Not terminated: it comes back after AckWait and is tried again.
		r.log.ErrorContext(ctx, "dead letter not stored; the delivery will be retried", "error", err)
		return
	}
	_ = m.TermWithReason(reason)
	r.log.ErrorContext(ctx, "delivery dead-lettered", "subject", m.Subject(), "reason", reason, "error", cause.Error(), "attempts", attempts)
}

// memberEvent names the portal and the event (raw events) or entity type
// (changes) of a message.
func memberEvent(m message) (member, event string) {
	member, event = m.header.Get(eventbus.HeaderMemberID), m.header.Get(eventbus.HeaderEvent)
	parts := strings.Split(m.subject, ".")
	switch {
	case strings.HasPrefix(m.subject, eventbus.EventsPrefix+".") && len(parts) == 4:
		member, event = parts[2], parts[3]
	case strings.HasPrefix(m.subject, eventbus.ChangesPrefix+".") && len(parts) == 5:
		member, event = parts[3], "change_"+parts[2]
	}
	return member, event
}

func token(s string) string {
	if eventbus.ValidToken(s) {
		return s
	}
	return "unknown"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// message is a stored message as delivery needs it: from a consumer, or
// read from the stream for a replay.
type message struct {
	subject string
	header  nats.Header
	data    []byte
	seq     uint64
	time    time.Time
	// replay names a replay; empty for a consumer's delivery.
	replay string
	// replayID is the event id a replay's outcome is reported under
	// (the monitor's replay record); empty: the message's own.
	replayID string
}

func fromMsg(m jetstream.Msg) message {
	msg := message{subject: m.Subject(), header: m.Headers(), data: m.Data(), seq: seq(m), time: time.Now()}
	if md, err := m.Metadata(); err == nil {
		msg.time = md.Timestamp
	}
	return msg
}

// traceHeader continues the event's trace (its traceparent header) into
// the receiver's request, or the current one when the message has none.
func traceHeader(ctx context.Context, h nats.Header) http.Header {
	hdr := http.Header{}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(hdr))
	if tp := h.Get("traceparent"); tp != "" {
		hdr.Set("Traceparent", tp)
		if ts := h.Get("tracestate"); ts != "" {
			hdr.Set("Tracestate", ts)
		}
	}
	return hdr
}
