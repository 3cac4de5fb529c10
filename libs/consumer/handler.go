package consumer

import (
	"context"
	"time"
)

// Handler processes one message at a time. It returns nil on success, or an
// error classified by [Decide]: [Skip], [Permanent], [RetryAfter], or any
// other error (transient). It must be idempotent: a message can be
// delivered again after its effect was applied (a lost ack, a crash).
type Handler[T any] interface {
	Handle(ctx context.Context, m *Message[T]) error
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc[T any] func(ctx context.Context, m *Message[T]) error

// Handle calls f.
func (f HandlerFunc[T]) Handle(ctx context.Context, m *Message[T]) error { return f(ctx, m) }

// BatchHandler processes messages of one portal (same Meta.MemberID)
// gathered within Spec.BatchWindow, up to Spec.BatchSize, so that one REST
// batch call serves many events and repeated events about one entity cost
// one fetch. It returns nil when every message succeeded, or a slice with
// one result per message (same order; nil = success). A slice of the wrong
// length fails the whole batch as transient. The same idempotency rule as
// for [Handler] applies.
type BatchHandler[T any] interface {
	HandleBatch(ctx context.Context, batch []*Message[T]) []error
}

// Pacer is implemented by a [BatchHandler] whose next batch of a portal
// cannot start before a time it knows, such as the portal's next REST
// slot (bitrix.Client.NextSlot). The runtime then keeps a portal's batch
// open past Spec.BatchWindow, while it is not full, until ReadyAt of its
// portal (at most ten windows after its first message): the batch takes
// in what arrives while the slot is not free yet, instead of reaching the
// handler early and waiting there with what it had. ReadyAt must not block;
// the zero time means now.
type Pacer interface {
	ReadyAt(memberID string) time.Time
}

// BatchHandlerFunc adapts a function to [BatchHandler].
type BatchHandlerFunc[T any] func(ctx context.Context, batch []*Message[T]) []error

// HandleBatch calls f.
func (f BatchHandlerFunc[T]) HandleBatch(ctx context.Context, batch []*Message[T]) []error {
	return f(ctx, batch)
}

// FailAll returns a result slice that applies err to every message of a
// batch of n, a convenience for batch handlers whose shared step failed.
func FailAll(n int, err error) []error {
	if err == nil {
		return nil
	}
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// single runs a Handler as a BatchHandler of one.
type single[T any] struct{ h Handler[T] }

func (s single[T]) HandleBatch(ctx context.Context, batch []*Message[T]) []error {
	errs := make([]error, len(batch))
	for i, m := range batch {
		errs[i] = s.h.Handle(ctx, m)
	}
	return errs
}
