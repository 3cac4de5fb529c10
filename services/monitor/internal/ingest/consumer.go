// Package ingest feeds the ledger from JetStream: three durable consumers
// (raw events, outcomes, dead letters) on the consumer runtime's
// batch-commit mode (consumer.RegisterCommit) read messages in batches,
// write each batch in one PostgreSQL transaction and acknowledge the
// messages only after that transaction committed. PostgreSQL being down
// makes a consumer wait and retry the same batch (keeping its messages in
// progress); it never drops or acknowledges an unwritten message, and
// publishes no outcomes.
package ingest

import (
	"context"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// Durable consumer names. They are public API: renaming one makes the
// monitor re-read its whole stream (harmless, writes are idempotent, but
// slow) and leaves the old consumer behind.
const (
	DurableLedger   = "monitor-ledger"
	DurableOutcomes = "monitor-outcomes"
	DurableDead     = "monitor-dead"
)

// Spec describes one durable consumer of the monitor.
type Spec struct {
	// Durable is the consumer name (public API, see the constants).
	Durable string
	// Stream is the stream read.
	Stream string
	// Filter is the subject filter.
	Filter string
	// Description is shown by `nats consumer info`.
	Description string
}

// Specs are the monitor's three consumers.
var (
	LedgerSpec = Spec{DurableLedger, eventbus.StreamEvents, eventbus.EventsPrefix + ".>",
		"b24hub monitor: records every raw event in the delivery ledger"}
	OutcomesSpec = Spec{DurableOutcomes, eventbus.StreamOutcomes, eventbus.OutcomesPrefix + ".>",
		"b24hub monitor: folds consumer outcomes into delivery rows"}
	DeadSpec = Spec{DurableDead, eventbus.StreamDead, eventbus.DeadPrefix + ".>",
		"b24hub monitor: marks dead-lettered deliveries"}
)

// WriteFunc writes a batch of messages to the ledger in one transaction and
// must be idempotent: after a crash between commit and acknowledgement the
// same messages come again.
type WriteFunc func(ctx context.Context, batch []Raw) error

// Options tune a Consumer. Zero fields take the defaults noted.
type Options struct {
	// BatchSize is the largest batch written at once. Default 500.
	BatchSize int
	// BatchWait is how long a batch waits to fill after its first message.
	// Default 20ms.
	BatchWait time.Duration
	// AckWait is the consumer's ack wait; a batch being retried is kept in
	// progress well within it, and a batch being written at shutdown is
	// given half of it. Default 30s.
	AckWait time.Duration
	// RetryMax caps the back-off between retries of a failed write.
	// Default 5s.
	RetryMax time.Duration
	// OnWrite, when set, is called after every committed batch (metrics).
	OnWrite func(durable string, n int, d time.Duration)
	// OnFailure, when set, is called after every failed write attempt.
	OnFailure func(durable string, err error)
	// Tracer, when set, records one "process <durable>" span per message,
	// child of the trace context in its headers, so an event's trace shows
	// its ledger write. Default: no spans.
	Tracer trace.Tracer
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.BatchWait <= 0 {
		o.BatchWait = 20 * time.Millisecond
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Second
	}
	return o
}

// Consumer runs one durable consumer into one WriteFunc.
type Consumer struct {
	js    jetstream.JetStream
	spec  Spec
	write WriteFunc
	opts  Options
	log   *slog.Logger
}

// NewConsumer returns a Consumer; Run starts it.
func NewConsumer(js jetstream.JetStream, spec Spec, write WriteFunc, opts Options, log *slog.Logger) *Consumer {
	return &Consumer{js: js, spec: spec, write: write, opts: opts.withDefaults(), log: log}
}

// runtimeSpec is the consumer runtime's definition of the consumer.
func (c *Consumer) runtimeSpec() consumer.Spec {
	return consumer.Spec{Durable: c.spec.Durable, Description: c.spec.Description, Stream: c.spec.Stream,
		FilterSubjects: []string{c.spec.Filter}, AckWait: c.opts.AckWait,
		BatchSize: c.opts.BatchSize, BatchWindow: c.opts.BatchWait}
}

// Run reads and writes batches until ctx ends. A batch being written when
// ctx ends is finished (bounded by AckWait/2) and acknowledged, so shutdown
// does not cause redeliveries. Run returns nil after a clean shutdown; it
// retries every broker error (stream missing, connection lost) itself.
func (c *Consumer) Run(ctx context.Context) error {
	rt, err := consumer.New(c.js.Conn(), consumer.WithLogger(c.log), consumer.WithDrainTimeout(c.opts.AckWait/2))
	if err != nil {
		return err
	}
	durable := c.spec.Durable
	o := consumer.CommitOptions{RetryMax: c.opts.RetryMax, Tracer: c.opts.Tracer}
	if c.opts.OnWrite != nil {
		o.OnCommit = func(n int, d time.Duration) { c.opts.OnWrite(durable, n, d) }
	}
	if c.opts.OnFailure != nil {
		o.OnFailure = func(err error) { c.opts.OnFailure(durable, err) }
	}
	raws := func(ctx context.Context, batch []consumer.Committed) error {
		out := make([]Raw, len(batch))
		for i, m := range batch {
			out[i] = Raw{Subject: m.Subject, Header: m.Header, Data: m.Data, StreamSeq: m.StreamSeq, Timestamp: m.Stored}
		}
		// PostgreSQL not answering is named on the dependency gauge.
		return consumer.ClassifyPostgres(c.write(ctx, out))
	}
	if err := consumer.RegisterCommit(rt, c.runtimeSpec(), raws, o); err != nil {
		return err
	}
	// The consumer must exist before Run: wait for the streams, and for
	// the broker, as long as it takes.
	retry := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(c.opts.RetryMax), backoff.WithMaxElapsedTime(0))
	if err := backoff.Retry(func() error {
		err := rt.ProvisionWhenStreamsExist(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.WarnContext(ctx, "monitor consumer not provisioned, retrying", "consumer", durable, "error", err)
		}
		return err
	}, backoff.WithContext(retry, ctx)); err != nil {
		return nil // ctx ended
	}
	c.log.InfoContext(ctx, "monitor consumer started", "consumer", durable, "stream", c.spec.Stream, "filter", c.spec.Filter)
	return rt.Run(ctx)
}
