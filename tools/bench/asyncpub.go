package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// asyncPublisher is the thin wrapper over the library that the issue asks
// eventbus.Publisher to be measured against: jetstream.PublishMsgAsync on a
// JetStream context made with WithPublishAsyncMaxPending and
// WithPublishAsyncTimeout, each caller waiting for its own PubAckFuture.
// It keeps eventbus.Publisher's contract, so the ingress runs on it
// unchanged: the same producer span and attributes, the trace context and
// Nats-Msg-Id in the headers, the same errors (ErrNotConfirmed,
// ErrNoStream, the server's *jetstream.APIError), "no responders" retried
// for up to 2 s, and the caller's data never read after Publish returned
// (the library's own no-responder retries would re-send the message from
// a timer, after a caller that gave up may have reused its buffer, so they
// are off and the wrapper retries itself).
type asyncPublisher struct {
	js     jetstream.JetStream
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// asyncMaxPending bounds the publishes in flight: past it PublishMsgAsync
// stalls (up to 200 ms, then ErrTooManyStalledMsgs). It also keeps the
// library's reply subscription below its pending limit (512k messages),
// so acks are never dropped as a slow consumer's.
const asyncMaxPending = 4096

// newAsyncPublisher returns the wrapper on its own JetStream context of
// nc, whose async publishes give up after timeout.
func newAsyncPublisher(nc *nats.Conn, timeout time.Duration) (*asyncPublisher, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(asyncMaxPending), jetstream.WithPublishAsyncTimeout(timeout))
	if err != nil {
		return nil, err
	}
	return &asyncPublisher{js: js, tracer: otel.GetTracerProvider().Tracer("github.com/b24hub/b24hub/libs/eventbus"), prop: eventbus.Propagator()}, nil
}

// noLibraryRetry turns the library's no-responder retries off (see
// asyncPublisher); shared, so the option itself is not built per message.
var noLibraryRetry = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}

func (p *asyncPublisher) Publish(ctx context.Context, m eventbus.Message) (*jetstream.PubAck, error) {
	ctx, span := p.tracer.Start(ctx, "publish "+eventbus.EventsPrefix, trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	attrs := [8]attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
		semconv.MessagingDestinationName(m.Subject),
		semconv.MessagingMessageID(m.MsgID),
		semconv.MessagingMessageBodySize(len(m.Data)),
	}
	msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}
	if msg.Header == nil {
		msg.Header = make(nats.Header, 4)
	}
	p.prop.Inject(ctx, eventbus.HeaderCarrier(msg.Header))
	if m.MsgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, m.MsgID)
	}
	ack, err := p.send(ctx, msg)
	if err != nil {
		span.SetAttributes(attrs[:6]...)
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	attrs[6] = attribute.Int64("messaging.nats.stream_sequence", int64(ack.Sequence))
	attrs[7] = attribute.Bool("messaging.nats.duplicate", ack.Duplicate)
	span.SetAttributes(attrs[:]...)
	return ack, nil
}

// send publishes msg until it is confirmed, refused, or no stream took it
// for 2 s (the same patience as eventbus.Publisher, spaced from 100 ms,
// doubling).
func (p *asyncPublisher) send(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	wait, first := 100*time.Millisecond, time.Time{}
	for {
		// The library sets the reply subject on the message it sends,
		// not on ours, but refuses a message that has one.
		msg.Reply = ""
		paf, err := p.js.PublishMsgAsync(msg, noLibraryRetry...)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", eventbus.ErrNotConfirmed, err)
		}
		select {
		case ack := <-paf.Ok():
			return ack, nil
		case err = <-paf.Err():
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", eventbus.ErrNotConfirmed, ctx.Err())
		}
		var apiErr *jetstream.APIError
		switch {
		case errors.As(err, &apiErr):
			return nil, fmt.Errorf("eventbus: publish %s: %w", msg.Subject, err)
		case !errors.Is(err, jetstream.ErrNoStreamResponse):
			return nil, fmt.Errorf("%w: %w", eventbus.ErrNotConfirmed, err)
		}
		if first.IsZero() {
			first = time.Now()
		}
		if time.Since(first)+wait > 2*time.Second {
			return nil, eventbus.ErrNoStream
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, eventbus.ErrNoStream
		}
		wait *= 2
	}
}
