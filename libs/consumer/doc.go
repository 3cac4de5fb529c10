// Package consumer is b24hub's consumer runtime: the one place that owns
// JetStream acknowledgement for every service that processes events.
//
// A consumer is a package that implements [Handler] (one message at a time)
// or [BatchHandler] (messages grouped per portal within a short window, so
// one REST batch call serves many events). It is registered with a [Spec]
// — the single definition of its durable JetStream consumer — in one line:
//
//	rt, _ := consumer.New(nc, consumer.WithLogger(log))
//	consumer.Register(rt, dealsync.Spec(), consumer.DecodeEnvelope, handler)
//	err := rt.Run(ctx) // provisions, consumes, drains on ctx.Done()
//
// Handlers never acknowledge. They return nil or an error, and exactly one
// function, [Decide], turns the result into an action:
//
//	nil                         ack, outcome DONE
//	Skip(reason)                ack, outcome SKIPPED
//	transient error, panic      nak with a delay from Spec.Backoff, outcome RETRY
//	RetryAfter(d, err)          nak with delay d, outcome RETRY
//	Permanent(err), undecodable dead-letter + term, outcome DEAD
//	last delivery failed        dead-letter + term, outcome DEAD
//	Unavailable(dep, err)       pause: stop fetching, keep the message in
//	                            progress, run it again when dep answers;
//	                            outcome RETRY, no delivery spent
//	UnavailableFor(dep, portal, hold: keep the message in progress with its
//	  err)                      portal's other messages (new ones join
//	                            without calling it), probe the portal, run
//	                            them in stream order when it answers; the
//	                            consumer goes on with other portals;
//	                            outcome RETRY, no delivery spent
//
// What a consumer may hold is bounded by its credits (at most
// MaxAckPending): when held messages leave the reader less than one pull
// of room, the consumer pauses as a whole until a held portal answers.
//
// JetStream's own BackOff does not apply to naks, so the runtime computes
// the delay from the delivery count. Long handlers are kept alive with
// InProgress. Every attempt publishes an [eventsv1.Outcome] on
// eventbus.Outcome(consumer, member) for the monitor, and dead letters go to
// eventbus.Dead(consumer, member, event) with B24-Dead-* headers.
//
// Every message is processed inside a span whose parent is the trace context
// from its NATS headers (plus a link to it); a batch gets its own span that
// links every message, and every message span links back to it. Logs carry member_id, event, entity_id, consumer and
// delivery; metrics count processed, failed and dead messages and record
// duration and lag.
//
// Package consumertest holds the conformance suite every consumer runs.
package consumer
