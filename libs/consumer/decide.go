package consumer

import (
	"context"
	"errors"
	"time"

	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
)

// Verb is what the runtime does with a message.
type Verb int

// The runtime's acknowledgement verbs.
const (
	// VerbAck acknowledges: the message is done.
	VerbAck Verb = iota + 1
	// VerbNak asks for a redelivery after Action.Delay.
	VerbNak
	// VerbDead publishes the message to the dead-letter stream, then
	// terminates it.
	VerbDead
	// VerbWait keeps the message (in progress, not redelivered) while a
	// dependency is down and runs it again when the dependency answers. A
	// dependency every message shares pauses the consumer (it stops
	// fetching); one portal's holds that portal's messages only. No
	// delivery is spent.
	VerbWait
)

func (v Verb) String() string {
	switch v {
	case VerbAck:
		return "ack"
	case VerbNak:
		return "nak"
	case VerbDead:
		return "dead"
	case VerbWait:
		return "wait"
	}
	return "unknown"
}

// Action is the decision for one processed message.
type Action struct {
	Verb Verb
	// Delay is the nak delay (VerbNak only).
	Delay time.Duration
	// Status is the outcome status reported to the monitor.
	Status eventsv1.OutcomeStatus
	// Reason is the dead-letter reason header (VerbDead only):
	// "permanent", "undecodable" or "max_deliveries".
	Reason string
	// Kind classifies the error for Outcome.error_kind; empty on success.
	Kind string
}

// Attempt is what Decide needs to know about the delivery.
type Attempt struct {
	// Delivery is the delivery count, starting at 1.
	Delivery uint64
	// ShuttingDown is true when the runtime is draining; a handler error
	// caused by that is retried at once elsewhere, not counted as a failure.
	ShuttingDown bool
}

// Decide is the one place that maps a handler's result to an ack decision.
// spec must have its defaults applied.
//
//   - nil: ack, DONE.
//   - a *SkipError: ack, SKIPPED.
//   - ErrUndecodable: dead letter, reason "undecodable".
//   - ErrPermanent: dead letter, reason "permanent".
//   - anything else (a *RetryAfterError, a *PanicError, any error) on the
//     last delivery (Spec.MaxDeliver): dead letter, reason "max_deliveries".
//   - a context error while the runtime shuts down: nak at once.
//   - an *UnavailableError (a dependency is down): wait, whatever the
//     delivery count, outcome RETRY; while the runtime shuts down, nak at
//     once for another replica. Whether the whole consumer waits or only
//     the message's portal is the pipeline's business (see
//     [UnavailableError.Portal]), not Decide's.
//   - a *RetryAfterError: nak after its Delay.
//   - anything else: nak after Spec.Backoff for this delivery.
func Decide(spec Spec, at Attempt, err error) Action {
	if err == nil {
		return Action{Verb: VerbAck, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE}
	}
	kind := errorKind(err)
	var skip *SkipError
	switch {
	case errors.As(err, &skip):
		return Action{Verb: VerbAck, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED}
	case errors.Is(err, ErrUndecodable):
		return dead("undecodable", kind)
	case errors.Is(err, ErrPermanent):
		return dead("permanent", kind)
	case at.ShuttingDown && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// Not the message's fault: hand it to another replica now, and do not
		// spend its last delivery on it.
		return Action{Verb: VerbNak, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: KindShutdown}
	case isUnavailable(err):
		// Not the event's fault either: its delivery budget is kept for
		// errors of its own.
		if at.ShuttingDown {
			return Action{Verb: VerbNak, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: kind}
		}
		return Action{Verb: VerbWait, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: kind}
	case at.Delivery >= uint64(spec.MaxDeliver):
		if kind == KindTransient {
			kind = KindMaxDeliveries
		}
		return dead("max_deliveries", kind)
	}
	delay := spec.backoff(at.Delivery)
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		delay = ra.Delay
	}
	return Action{Verb: VerbNak, Delay: delay, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: kind}
}

// isUnavailable reports whether err says a dependency is down.
func isUnavailable(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u)
}

// portalWait reports whether err says only the portal of a message of
// member (its Message.MemberID) is down: the message is held under member
// while the consumer goes on with other portals.
func portalWait(err error, member string) bool {
	var u *UnavailableError
	return member != "" && errors.As(err, &u) && u.Portal != ""
}

// dependencyOf names the dependency an *UnavailableError in err's chain
// waits for, "" when there is none.
func dependencyOf(err error) string {
	var u *UnavailableError
	if errors.As(err, &u) {
		return u.Dependency
	}
	return ""
}

func dead(reason, kind string) Action {
	return Action{Verb: VerbDead, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, Reason: reason, Kind: kind}
}

// errorKind returns the first ErrorKind() in err's chain, else the runtime's
// own classification.
func errorKind(err error) string {
	var k ErrorKinder
	if errors.As(err, &k) && k.ErrorKind() != "" {
		return k.ErrorKind()
	}
	var p *PanicError
	switch {
	case errors.Is(err, ErrUndecodable):
		return KindUndecodable
	case errors.Is(err, ErrPermanent):
		return KindPermanent
	case errors.As(err, &p):
		return KindPanic
	}
	return KindTransient
}
