package eventbus

import (
	"context"
	"errors"
	"fmt"

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

// Message is one message to publish.
type Message struct {
	// Subject is required; build it with the subject functions of this package.
	Subject string
	// MsgID is the de-duplication id (Nats-Msg-Id). Optional but every b24hub
	// publisher sets one.
	MsgID string
	// Data is the payload.
	Data []byte
	// Header is optional extra headers; the trace context is added to it.
	Header nats.Header
}

// Publisher publishes to JetStream with the trace context injected and a
// producer span per message. Publishes are pipelined: many goroutines can
// publish at once and each waits only for its own PubAck, not for a round
// trip in turn. Safe for concurrent use.
type Publisher struct {
	js     jetstream.JetStream
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithTracerProvider sets the tracer provider (default: the global one).
func WithTracerProvider(tp trace.TracerProvider) PublisherOption {
	return func(p *Publisher) { p.tracer = tp.Tracer("github.com/b24hub/b24hub/libs/eventbus") }
}

// NewPublisher returns a Publisher on js.
func NewPublisher(js jetstream.JetStream, opts ...PublisherOption) *Publisher {
	p := &Publisher{js: js, prop: Propagator()}
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
// It returns ErrNotConfirmed (wrapped) when ctx ends first, and the
// server's error when JetStream rejected the message.
func (p *Publisher) Publish(ctx context.Context, m Message) (*jetstream.PubAck, error) {
	ctx, span := p.tracer.Start(ctx, "publish "+subjectTemplate(m.Subject),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(m.Subject),
			semconv.MessagingMessageID(m.MsgID),
			semconv.MessagingMessageBodySize(len(m.Data)),
		))
	defer span.End()

	msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	p.prop.Inject(ctx, HeaderCarrier(msg.Header))
	var opts []jetstream.PublishOpt
	if m.MsgID != "" {
		opts = append(opts, jetstream.WithMsgID(m.MsgID))
	}
	fut, err := p.js.PublishMsgAsync(msg, opts...)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("%w: %w", ErrNotConfirmed, err)
	}
	select {
	case ack := <-fut.Ok():
		span.SetAttributes(attribute.Int64("messaging.nats.stream_sequence", int64(ack.Sequence)),
			attribute.Bool("messaging.nats.duplicate", ack.Duplicate))
		return ack, nil
	case err := <-fut.Err():
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("eventbus: publish %s: %w", m.Subject, err)
	case <-ctx.Done():
		span.SetStatus(codes.Error, "not confirmed")
		return nil, fmt.Errorf("%w: %w", ErrNotConfirmed, ctx.Err())
	}
}

// subjectTemplate maps a subject to its low-cardinality family for span
// names (portal ids and entity ids never go into a span name).
func subjectTemplate(subject string) string {
	for _, p := range []string{EventsPrefix, ChangesPrefix, CommandsPrefix, OutcomesPrefix, DeadPrefix} {
		if len(subject) > len(p) && subject[:len(p)] == p && subject[len(p)] == '.' {
			return p
		}
	}
	return "b24"
}
