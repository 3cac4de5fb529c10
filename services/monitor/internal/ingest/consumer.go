// Package ingest feeds the ledger from JetStream: three durable pull
// consumers (raw events, outcomes, dead letters) read messages in batches,
// write each batch in one PostgreSQL transaction and acknowledge the
// messages only after that transaction committed. PostgreSQL being down
// makes a consumer wait and retry the same batch (keeping its messages in
// progress); it never drops or acknowledges an unwritten message.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
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

// ConsumerConfig returns the JetStream definition of s. The monitor owns
// these consumers and creates or updates them at start.
func (s Spec) ConsumerConfig(ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       s.Durable,
		Description:   s.Description,
		FilterSubject: s.Filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // the ledger never gives up on a message
		MaxAckPending: maxAckPending,
	}
}

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
	// progress well within it. Default 30s.
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
	return &Consumer{js: js, spec: spec, write: write, opts: opts.withDefaults(), log: log.With("consumer", spec.Durable)}
}

// Run reads and writes batches until ctx ends. A batch being written when
// ctx ends is finished (bounded by AckWait) and acknowledged, so shutdown
// does not cause redeliveries. Run returns nil after a clean shutdown; it
// retries every broker error (stream missing, connection lost) itself.
func (c *Consumer) Run(ctx context.Context) error {
	restart := c.backOff()
	for ctx.Err() == nil {
		err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		delay := restart.NextBackOff()
		c.log.WarnContext(ctx, "monitor consumer restarting", "error", err, "in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
	return nil
}

// backOff spaces retries: from 100 ms, doubling, jittered, up to RetryMax,
// never giving up (the ledger must not drop a message).
func (c *Consumer) backOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(c.opts.RetryMax), backoff.WithMaxElapsedTime(0))
}

// Ensure creates or updates the durable consumer.
func (c *Consumer) Ensure(ctx context.Context) (jetstream.Consumer, error) {
	cfg := c.spec.ConsumerConfig(c.opts.AckWait, max(4*c.opts.BatchSize, 1000))
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.spec.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("ingest: consumer %s on %s: %w", c.spec.Durable, c.spec.Stream, err)
	}
	return cons, nil
}

func (c *Consumer) runOnce(ctx context.Context) error {
	cons, err := c.Ensure(ctx)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2*c.opts.BatchSize), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("ingest: messages %s: %w", c.spec.Durable, err)
	}
	defer it.Stop()
	c.log.InfoContext(ctx, "monitor consumer started", "stream", c.spec.Stream, "filter", c.spec.Filter)
	batch := make([]jetstream.Msg, 0, c.opts.BatchSize)
	for {
		batch = batch[:0]
		first, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		batch = append(batch, first)
		deadline := time.Now().Add(c.opts.BatchWait)
		for len(batch) < c.opts.BatchSize {
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			m, err := it.Next(jetstream.NextMaxWait(wait))
			if err != nil {
				if errors.Is(err, nats.ErrTimeout) {
					break
				}
				// Write what we have; the iterator error surfaces on the next Next.
				break
			}
			batch = append(batch, m)
		}
		if err := c.flush(ctx, batch); err != nil {
			return err
		}
	}
}

// flush writes batch until it succeeds, then acknowledges every message.
// While retrying it marks the messages in progress so JetStream does not
// redeliver them to another replica meanwhile. When ctx ends during retries,
// it returns without acknowledging (the messages will be redelivered).
func (c *Consumer) flush(ctx context.Context, batch []jetstream.Msg) error {
	raws := make([]Raw, len(batch))
	for i, m := range batch {
		raws[i] = Raw{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
		if md, err := m.Metadata(); err == nil {
			raws[i].StreamSeq, raws[i].Timestamp = md.Sequence.Stream, md.Timestamp
		}
	}
	wctx, spans := c.startSpans(ctx, raws)
	defer spans.end()
	// A write in progress at shutdown is finished, within the ack wait.
	write := func() error {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(wctx), c.opts.AckWait/2)
		defer cancel()
		return c.write(wctx, raws)
	}
	retry := c.backOff()
	lastProgress := time.Now()
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := write()
		if err == nil {
			spans.ok()
			if c.opts.OnWrite != nil {
				c.opts.OnWrite(c.spec.Durable, len(batch), time.Since(start))
			}
			for _, m := range batch {
				if err := m.Ack(); err != nil {
					// Not fatal: the message comes again and the write is idempotent.
					c.log.WarnContext(ctx, "monitor ack failed", "error", err)
				}
			}
			if attempt > 1 {
				c.log.InfoContext(ctx, "monitor ledger write recovered", "attempts", attempt, "batch", len(batch))
			}
			return nil
		}
		if c.opts.OnFailure != nil {
			c.opts.OnFailure(c.spec.Durable, err)
		}
		spans.failed(attempt, err)
		if attempt == 1 || attempt%10 == 0 {
			c.log.ErrorContext(ctx, "monitor ledger write failed, retrying", "error", err, "batch", len(batch), "attempt", attempt)
		}
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry.NextBackOff()):
		}
		if time.Since(lastProgress) > c.opts.AckWait/3 {
			for _, m := range batch {
				_ = m.InProgress()
			}
			lastProgress = time.Now()
		}
	}
}
