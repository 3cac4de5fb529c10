package consumer

import (
	"errors"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
)

// ErrPermanent marks an error that no retry can fix (bad input, an entity
// the handler must not touch). The runtime dead-letters the message at once.
// Test with errors.Is; create with [Permanent].
var ErrPermanent = errors.New("permanent")

// ErrUndecodable marks a payload the runtime could not decode. It is
// permanent: such a message is dead-lettered and terminated, never retried.
var ErrUndecodable = errors.New("undecodable payload")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds while err
// stays reachable through errors.Is/As. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{ErrPermanent, e.err} }

// SkipError says a message needed no work (a duplicate, an echo of the
// platform's own write, a no-op change). The runtime acks it and reports the
// outcome as SKIPPED with Reason as the outcome's error text.
type SkipError struct {
	// Reason is a short, low-cardinality explanation ("echo", "no change").
	Reason string
}

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Skip returns a *SkipError with reason.
func Skip(reason string) error { return &SkipError{Reason: reason} }

// RetryAfterError asks for a redelivery after Delay instead of the delay the
// Spec's backoff would give. It still counts as a delivery: after the last
// one the message is dead-lettered.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.Delay, e.Err)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns an error that naks the message with delay d. Use it for
// waits the handler can estimate (a call recording that appears seconds
// later, a Retry-After from a server). err may be nil.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("not ready")
	}
	return &RetryAfterError{Delay: d, Err: err}
}

// UnavailableError says a dependency the handler needs did not answer
// (PostgreSQL, NATS, a portal answering 5xx or timing out, a rate limit that
// outlasted the client's own waiting). It is not the event's fault: the
// runtime keeps the messages that met it in progress and runs them again
// with a jittered, growing wait until the dependency answers. The delivery
// budget (Spec.MaxDeliver) is not spent on it, so an outage of any length
// dead-letters nothing.
//
// What else waits depends on Portal. A dependency every message shares
// (Portal empty: the database, NATS) pauses the whole consumer: it stops
// fetching. One portal not answering (Portal set) holds only that portal's
// messages: the consumer goes on with every other portal's, and the
// portal's new messages join its held ones instead of calling it (see
// [Decide] and docs/architecture.md, "Unavailable dependencies"). Create it
// with [Unavailable] or [UnavailableFor]; [ClassifyPostgres] and
// bitrixport.Classify produce it for their errors.
type UnavailableError struct {
	// Dependency names what is down, low-cardinality: "postgresql",
	// "nats", "bitrix24", "destination". It labels the
	// consumer.dependency.down gauge and the alert.
	Dependency string
	// Portal is the member_id of the one portal that does not answer, when
	// the dependency is that portal; empty when every message needs the
	// dependency. The runtime holds a message under its own portal
	// (Message.MemberID): a message without one pauses the consumer as if
	// Portal were empty.
	Portal string
	Err    error
}

func (e *UnavailableError) Error() string {
	if e.Portal != "" {
		return e.Dependency + " unavailable for portal " + e.Portal + ": " + e.Err.Error()
	}
	return e.Dependency + " unavailable: " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// ErrorKind implements [ErrorKinder]: the wrapped error's own kind when it
// has one (a portal's "overload" stays "overload" in the ledger), else
// [KindUnavailable].
func (e *UnavailableError) ErrorKind() string {
	var k ErrorKinder
	if errors.As(e.Err, &k) && k.ErrorKind() != "" {
		return k.ErrorKind()
	}
	return KindUnavailable
}

// Unavailable wraps err as the failure of a dependency every message
// shares (see [UnavailableError]): the consumer pauses until it answers.
// Unavailable(dep, nil) is nil. A [Permanent] error stays permanent:
// wrapping it does not make it wait.
func Unavailable(dependency string, err error) error {
	return UnavailableFor(dependency, "", err)
}

// UnavailableFor wraps err as the failure of dependency for one portal
// (its member_id): only that portal's messages wait, the consumer goes on
// with the others'. An empty portal is [Unavailable]. UnavailableFor(dep,
// portal, nil) is nil; a [Permanent] error stays permanent.
func UnavailableFor(dependency, portal string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrPermanent) {
		return err
	}
	if dependency == "" {
		dependency = "unknown"
	}
	return &UnavailableError{Dependency: dependency, Portal: portal, Err: err}
}

// Dependency names used by the platform's classifiers.
const (
	DependencyPostgres    = "postgresql"
	DependencyNATS        = "nats"
	DependencyBitrix24    = "bitrix24"
	DependencyDestination = "destination"
)

// ErrorKinder is implemented by errors that classify themselves for
// alerting (for example the Bitrix24 client's OVERLOAD_LIMIT or
// reauthorization errors, see bitrixport.Kinded). The kind lands in
// Outcome.error_kind; it must be one of the eventbus.ErrorKind constants,
// the vocabulary the monitor's alert rules accept.
type ErrorKinder interface {
	ErrorKind() string
}

// Error kinds the runtime itself assigns when no error in the chain
// implements [ErrorKinder]. They are eventbus's (the one definition of the
// vocabulary), named here for handlers and tests.
const (
	KindPermanent     = eventbus.ErrorKindPermanent
	KindTransient     = eventbus.ErrorKindTransient
	KindUndecodable   = eventbus.ErrorKindUndecodable
	KindPanic         = eventbus.ErrorKindPanic
	KindMaxDeliveries = eventbus.ErrorKindMaxDeliveries
	KindShutdown      = eventbus.ErrorKindShutdown
	KindUnavailable   = eventbus.ErrorKindUnavailable
)

// PanicError is what a recovered handler panic becomes. It is transient:
// the message is redelivered with backoff.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panic: %v", e.Value) }
