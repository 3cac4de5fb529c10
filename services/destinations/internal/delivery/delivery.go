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
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
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

// AckWait is the consumer's ack wait; a worker that is still retrying
// tells the server every AckWait/3 that it is in progress.
const AckWait = 30 * time.Second

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
	// Backoff builds the retry schedule of one delivery; tests shorten it.
	backoff func() backoff.BackOff
}

// Options tune a Runner. Zero values take the defaults.
type Options struct {
	// InitialInterval is the first retry delay (default 1s); delays double
	// with ±50% jitter up to MaxInterval (default 5m), for the
	// destination's RetryFor.
	InitialInterval, MaxInterval time.Duration
}

// NewRunner returns a Runner for d.
func NewRunner(d destfile.Destination, js jetstream.JetStream, pub Publisher, sender *webhook.Sender, log *slog.Logger, o Options) *Runner {
	if o.InitialInterval == 0 {
		o.InitialInterval = time.Second
	}
	if o.MaxInterval == 0 {
		o.MaxInterval = 5 * time.Minute
	}
	burst := max(1, int(d.Rate))
	return &Runner{
		d: d, js: js, pub: pub, sender: sender, lim: rate.NewLimiter(rate.Limit(d.Rate), burst),
		log: log.With("destination", d.Name, "consumer", d.Durable()),
		backoff: func() backoff.BackOff {
			b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(o.InitialInterval),
				backoff.WithMaxInterval(o.MaxInterval), backoff.WithMaxElapsedTime(d.RetryFor),
				backoff.WithRandomizationFactor(0.5), backoff.WithMultiplier(2))
			return b
		},
	}
}

// ConsumerConfig is the destination's durable consumer.
func ConsumerConfig(d destfile.Destination) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        d.Durable(),
		Description:    "HTTP destination " + d.Name + " (" + d.URL.Host + ")",
		FilterSubjects: d.Subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        AckWait,
		MaxDeliver:     -1,
		// A destination starts with what arrives after it is declared; its
		// position survives restarts and reloads.
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		MaxAckPending:  max(64, d.Concurrency*32),
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{Group},
		PinnedTTL:      2 * time.Minute,
	}
}

// Run provisions the durable and delivers until ctx ends. Messages not yet
// delivered at shutdown are handed back in stream order, so the next
// replica resumes them in order at once.
func (r *Runner) Run(ctx context.Context) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, r.d.Stream, ConsumerConfig(r.d))
	if err != nil {
		return fmt.Errorf("destination %s: consumer: %w", r.d.Name, err)
	}
	it, err := cons.Messages(jetstream.PullPriorityGroup(Group), jetstream.PullMaxMessages(max(16, r.d.Concurrency*4)))
	if err != nil {
		return fmt.Errorf("destination %s: pull: %w", r.d.Name, err)
	}
	r.log.InfoContext(ctx, "destination delivering", "url", r.d.URL.Redacted(), "subjects", r.d.Subjects)
	queues := make([]chan jetstream.Msg, r.d.Concurrency)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		leftover []jetstream.Msg
	)
	for i := range queues {
		queues[i] = make(chan jetstream.Msg, 64)
		wg.Add(1)
		go func(q chan jetstream.Msg) {
			defer wg.Done()
			for m := range q {
				if ctx.Err() != nil || !r.deliver(ctx, m) {
					mu.Lock()
					leftover = append(leftover, m)
					mu.Unlock()
				}
			}
		}(queues[i])
	}
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			r.log.WarnContext(ctx, "pull failed", "error", err)
			continue
		}
		queues[partition(EntityKey(m), len(queues))] <- m
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	slices.SortFunc(leftover, func(a, b jetstream.Msg) int { return int(seq(a)) - int(seq(b)) })
	for _, m := range leftover {
		_ = m.Nak()
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
// same on every attempt, replica and restart, different per destination.
func DeliveryID(destination string, m jetstream.Msg) string {
	src := m.Headers().Get(eventbus.HeaderMsgID)
	if src == "" {
		src = m.Subject() + "#" + strconv.FormatUint(seq(m), 10)
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
	var (
		msg proto.Message
		typ string
	)
	switch {
	case strings.HasPrefix(m.Subject(), eventbus.ChangesPrefix+"."):
		msg = &eventsv1.DomainChange{}
		typ = "b24.change." + strings.Split(m.Subject(), ".")[2]
	case strings.HasPrefix(m.Subject(), eventbus.EventsPrefix+"."):
		_, ev, err := eventbus.ParseRawEvent(m.Subject())
		if err != nil {
			return nil, err
		}
		msg = &eventsv1.Envelope{}
		typ = "b24.event." + ev
	default:
		return nil, fmt.Errorf("subject %q is neither an event nor a change", m.Subject())
	}
	if err := proto.Unmarshal(m.Data(), msg); err != nil {
		return nil, fmt.Errorf("undecodable payload: %w", err)
	}
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		return nil, err
	}
	ts := time.Now()
	if md, err := m.Metadata(); err == nil {
		ts = md.Timestamp
	}
	return json.Marshal(Body{Type: typ, Timestamp: ts.UTC(), Subject: m.Subject(), Data: data})
}

// deliver sends m until it is delivered, dead-lettered, or ctx ends. It
// reports false when the message was left unsettled (shutdown).
func (r *Runner) deliver(ctx context.Context, m jetstream.Msg) bool {
	id := DeliveryID(r.d.Name, m)
	log := r.log.With("webhook_id", id, "subject", m.Subject())
	body, err := EncodeBody(m)
	if err != nil {
		r.dead(ctx, m, "undecodable", err, 0)
		return true
	}
	hdr := map[string][]string{}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(hdr))
	if tp := m.Headers().Get("traceparent"); tp != "" {
		// The event's trace continues into the receiver's request.
		hdr["Traceparent"] = []string{tp}
	}
	stop := keepInProgress(ctx, m)
	defer stop()
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
			r.outcome(ctx, m, eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, attempt, res, "")
			if err := m.DoubleAck(ctx); err != nil {
				log.WarnContext(ctx, "ack failed; the receiver may see this delivery again", "error", err)
			}
			log.DebugContext(ctx, "delivered", "status", res.Status, "attempt", attempt, "latency_ms", res.Latency.Milliseconds())
			return true
		}
		if res.Permanent {
			r.outcome(ctx, m, eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, attempt, res, "permanent")
			r.dead(ctx, m, "permanent", res.Err, attempt)
			return true
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			r.outcome(ctx, m, eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, attempt, res, "max_deliveries")
			r.dead(ctx, m, "max_deliveries", res.Err, attempt)
			return true
		}
		if res.RetryAfter > wait {
			wait = min(res.RetryAfter, time.Hour)
		}
		r.outcome(ctx, m, eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, attempt, res, retryKind(res))
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

// keepInProgress extends the ack deadline while a delivery is retried.
func keepInProgress(ctx context.Context, m jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

// outcome reports one attempt to the monitor as the internal consumers do
// (b24.outcomes.<durable>.<member>): the ledger, dashboard and replay show
// destinations per consumer. A failure to publish is logged only.
func (r *Runner) outcome(ctx context.Context, m jetstream.Msg, st eventsv1.OutcomeStatus, attempt int, res webhook.Result, kind string) {
	member, event := memberEvent(m)
	o := &eventsv1.Outcome{
		EventId: m.Headers().Get(eventbus.HeaderMsgID), Consumer: r.d.Durable(), Status: st,
		Attempt: uint32(attempt), Duration: durationpb.New(res.Latency), MemberId: member, Event: event,
		EntityId: m.Headers().Get(eventbus.HeaderEntityID), At: timestamppb.Now(),
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
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	h := nats.Header{}
	h.Set(eventbus.HeaderContentType, eventbus.ContentTypeProtobuf)
	if _, err := r.pub.Publish(pctx, eventbus.Message{
		Subject: eventbus.Outcome(r.d.Durable(), token(member)),
		MsgID:   fmt.Sprintf("outcome:%s:%s:%d", r.d.Durable(), DeliveryID(r.d.Name, m), attempt),
		Data:    data, Header: h,
	}); err != nil {
		r.log.WarnContext(ctx, "outcome not published", "error", err)
	}
}

// dead stores the message on the dead-letter stream and terminates it.
func (r *Runner) dead(ctx context.Context, m jetstream.Msg, reason string, cause error, attempts int) {
	member, event := memberEvent(m)
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
func memberEvent(m jetstream.Msg) (member, event string) {
	member, event = m.Headers().Get(eventbus.HeaderMemberID), m.Headers().Get(eventbus.HeaderEvent)
	parts := strings.Split(m.Subject(), ".")
	switch {
	case strings.HasPrefix(m.Subject(), eventbus.EventsPrefix+".") && len(parts) == 4:
		member, event = parts[2], parts[3]
	case strings.HasPrefix(m.Subject(), eventbus.ChangesPrefix+".") && len(parts) == 5:
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
