package consumer

import (
	"errors"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go/jetstream"
)

// maxHold caps the messages one process's pipeline holds at once (fetched,
// not yet settled; see pipeline.pullMax).
const maxHold = 1000

// Defaults applied by [Spec.WithDefaults].
const (
	DefaultAckWait = 30 * time.Second
	// DefaultMaxAckPending leaves room for 8 replicas each holding its
	// most (maxHold). The server counts MaxAckPending across every replica
	// of a consumer: were it one replica's hold, that replica would take the
	// whole budget under a backlog and a second replica would get nothing.
	DefaultMaxAckPending = 8 * maxHold
	DefaultConcurrency   = 4
	// DefaultProbeInterval and DefaultProbeMaxInterval bound the waits
	// between runs of a message whose dependency is down.
	DefaultProbeInterval    = time.Second
	DefaultProbeMaxInterval = 30 * time.Second
)

// DefaultBackoff is the nak delay schedule: the n-th failed delivery waits
// DefaultBackoff[n-1], the last entry repeating.
var DefaultBackoff = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}

// serverDeliverReserve is how many deliveries the server allows beyond
// Spec.MaxDeliver. The runtime dead-letters at MaxDeliver itself; the reserve
// makes sure a message whose handler crashed the whole process on its last
// delivery still comes back once more to be dead-lettered rather than being
// dropped silently by the server.
const serverDeliverReserve = 3

// Spec is the single definition of one durable consumer. The runtime
// creates or updates the JetStream consumer from it (CreateOrUpdateConsumer),
// so nothing else may define the same consumer.
type Spec struct {
	// Durable is the durable consumer name and the consumer name in
	// outcomes, dead-letter subjects, logs and metrics. Required; must be a
	// valid subject token (letters, digits, '-', '_').
	//
	// It is PUBLIC API: renaming it creates a new consumer that reprocesses
	// the whole stream from the start (DeliverPolicy) and orphans the old one.
	Durable string

	// Description is shown in `nats consumer info`. Optional.
	Description string

	// Stream is the stream to consume. Optional, default eventbus.StreamEvents.
	Stream string

	// FilterSubjects selects the messages, e.g.
	// eventbus.RawEventFilter("ONCRMDEALUPDATE"). Required.
	FilterSubjects []string

	// DeliverPolicy says where a new consumer starts. Optional, default
	// jetstream.DeliverAllPolicy (everything the stream still holds). It only
	// matters when the consumer is first created.
	DeliverPolicy jetstream.DeliverPolicy

	// MaxDeliver is the number of deliveries after which a failing message
	// is dead-lettered. Optional, default len(Backoff)+1 (one first try plus
	// one retry per backoff step).
	MaxDeliver int

	// AckWait is how long the server waits for an ack before redelivering.
	// The runtime sends InProgress every AckWait/3 while a handler runs, so
	// it bounds how long a stuck process holds a message, not how long a
	// handler may take. Optional, default 30s.
	AckWait time.Duration

	// Backoff is the nak delay per failed delivery: failure n waits
	// Backoff[n-1], the last entry repeating. Optional, default
	// DefaultBackoff (1m, 5m, 15m).
	Backoff []time.Duration

	// MaxAckPending bounds the messages delivered but not yet acked across
	// every replica. Optional, default DefaultMaxAckPending (8000: eight
	// replicas each holding its most, 1000). Set below replicas × one
	// replica's hold, it caps what added replicas can take.
	MaxAckPending int

	// Concurrency is the number of handler calls (single messages or
	// batches) running at once in this process. Optional, default 4.
	Concurrency int

	// MaxConcurrency lets the number of handler calls grow past
	// Concurrency while work waits: when a batch is ready and every
	// handler call is busy (waiting for a portal's REST slot or answer,
	// mostly), one more starts, up to MaxConcurrency; one idle for
	// ElasticIdle ends again. Optional, default 0: fixed at Concurrency.
	MaxConcurrency int

	// BatchSize is the largest batch handed to a BatchHandler. Optional,
	// default 50 for batch handlers (one Bitrix24 batch request) and always
	// 1 for single-message handlers.
	BatchSize int

	// BatchWindow is how long the runtime waits, after the first message of
	// a portal arrives, for more messages of the same portal before handing
	// the batch over. Optional, default 200ms for batch handlers; 0 for
	// single-message handlers.
	BatchWindow time.Duration

	// OneBatchPerMember holds a portal's next batch, while it is not full,
	// until the portal's previous batch in this process has been handled,
	// however long ago its BatchWindow ended. For a handler that spends one
	// call of the portal's REST budget per batch: under load each batch then
	// covers what arrived while the previous one waited for its slot,
	// instead of several small batches queueing behind the portal's rate
	// limit, each holding a handler call. A full batch (BatchSize
	// entities) is handed over at once. Optional, default false.
	OneBatchPerMember bool

	// ProbeInterval is the first wait before a message that met an
	// unavailable dependency ([Unavailable]) is run again; the wait doubles
	// (jittered ±50%) up to ProbeMaxInterval for as long as the dependency
	// stays down. Optional, default 1s.
	ProbeInterval time.Duration

	// ProbeMaxInterval caps that wait. Optional, default 30s.
	ProbeMaxInterval time.Duration

	// HandlerTimeout bounds one handler call. Optional, default 0 (none:
	// the runtime keeps the messages alive with InProgress).
	HandlerTimeout time.Duration
}

// WithDefaults returns s with every zero optional field set to its default.
func (s Spec) WithDefaults() Spec {
	if s.Stream == "" {
		s.Stream = eventbus.StreamEvents
	}
	if s.AckWait == 0 {
		s.AckWait = DefaultAckWait
	}
	if len(s.Backoff) == 0 {
		s.Backoff = append([]time.Duration(nil), DefaultBackoff...)
	}
	if s.MaxDeliver == 0 {
		s.MaxDeliver = len(s.Backoff) + 1
	}
	if s.MaxAckPending == 0 {
		s.MaxAckPending = DefaultMaxAckPending
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.ProbeInterval == 0 {
		s.ProbeInterval = DefaultProbeInterval
	}
	if s.ProbeMaxInterval == 0 {
		s.ProbeMaxInterval = max(DefaultProbeMaxInterval, s.ProbeInterval)
	}
	return s
}

// withBatchDefaults fills the batching fields for a batch handler.
func (s Spec) withBatchDefaults() Spec {
	if s.BatchSize == 0 {
		s.BatchSize = 50
	}
	if s.BatchWindow == 0 {
		s.BatchWindow = 200 * time.Millisecond
	}
	return s
}

// Validate reports a Spec that cannot work. It validates s as given; call
// WithDefaults first to validate what the runtime will use.
func (s Spec) Validate() error {
	var errs []error
	if !eventbus.ValidToken(s.Durable) {
		errs = append(errs, fmt.Errorf("durable name %q is not a valid subject token", s.Durable))
	}
	if len(s.FilterSubjects) == 0 {
		errs = append(errs, errors.New("no filter subjects"))
	}
	if s.MaxConcurrency != 0 && s.MaxConcurrency < s.Concurrency {
		errs = append(errs, fmt.Errorf("max concurrency %d below concurrency %d", s.MaxConcurrency, s.Concurrency))
	}
	if s.MaxDeliver < 0 || s.AckWait < 0 || s.MaxAckPending < 0 || s.Concurrency < 0 ||
		s.BatchSize < 0 || s.BatchWindow < 0 || s.HandlerTimeout < 0 || s.ProbeInterval < 0 || s.ProbeMaxInterval < 0 {
		errs = append(errs, errors.New("negative limit"))
	}
	if s.AckWait != 0 && s.AckWait < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("ack wait %s below 100ms", s.AckWait))
	}
	for _, d := range s.Backoff {
		if d < 0 {
			errs = append(errs, fmt.Errorf("negative backoff %s", d))
		}
	}
	if s.MaxAckPending > 0 && s.Concurrency*max(s.BatchSize, 1) > s.MaxAckPending {
		errs = append(errs, fmt.Errorf("concurrency×batch size %d exceeds max ack pending %d",
			s.Concurrency*max(s.BatchSize, 1), s.MaxAckPending))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("consumer: spec %q: %w", s.Durable, err)
	}
	return nil
}

// ConsumerConfig is the JetStream consumer definition derived from s (with
// defaults applied). The runtime applies it with CreateOrUpdateConsumer.
func (s Spec) ConsumerConfig() jetstream.ConsumerConfig {
	s = s.WithDefaults()
	return jetstream.ConsumerConfig{
		Durable:        s.Durable,
		Description:    s.Description,
		DeliverPolicy:  s.DeliverPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.AckWait,
		MaxDeliver:     s.MaxDeliver + serverDeliverReserve,
		FilterSubjects: s.FilterSubjects,
		MaxAckPending:  s.MaxAckPending,
		Metadata:       map[string]string{"b24hub.owner": "libs/consumer"},
	}
}

// backoff returns the nak delay after the given failed delivery (1-based).
func (s Spec) backoff(delivery uint64) time.Duration {
	if len(s.Backoff) == 0 {
		return 0
	}
	i := int(min(delivery, uint64(len(s.Backoff)))) - 1
	return s.Backoff[max(i, 0)]
}
