package consumer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// This file holds the messages of portals that do not answer
// (UnavailableFor with a portal), so that one portal's outage does not
// pause the consumer for every other portal. A held portal's messages stay
// in progress (keepAlive, no delivery spent); its new messages join them
// instead of calling it; one probe goroutine per held portal runs its
// oldest messages on the backoff schedule and, once they get through, the
// rest in stream order. The credits (at most MaxAckPending) bound what is
// held: when the held messages leave the reader less than one pull's
// worth of room, the consumer pauses (the outage gate), says so, and
// resumes when a portal's held messages are done.

// heldPortals is one pipeline's held messages, by portal (member_id).
type heldPortals[T any] struct {
	mu      sync.Mutex
	portals map[string]*heldPortal[T]
	count   int    // messages held, every portal, with those a probe is running
	room    int    // held messages past which the consumer pauses
	fullDep string // the dependency the consumer is paused for because of them; "" not paused
	// onFull pauses (enter) or resumes (leave) the consumer; it is called
	// with mu held, so pauses and resumes reach the gate in their order.
	onFull func(enter bool, dep string, count, room int)
}

// heldPortal is one portal's held messages.
type heldPortal[T any] struct {
	dep   string // the dependency, "bitrix24"
	label string // the portal's label on consumer.dependency.down (bounded)
	err   error  // the last error that held a message
	since time.Time
	items []*delivery[T] // by stream sequence
}

// check pauses the consumer when the held messages exceed the room and
// resumes it when they fit again; h.mu must be held.
func (h *heldPortals[T]) check(dep string) {
	switch {
	case h.count > h.room && h.fullDep == "":
		h.fullDep = dep
		h.onFull(true, dep, h.count, h.room)
	case h.count <= h.room && h.fullDep != "":
		h.onFull(false, h.fullDep, h.count, h.room)
		h.fullDep = ""
	}
}

// heldFor returns the error member's messages are held for, nil when they
// are not held.
func (h *heldPortals[T]) heldFor(member string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.portals[member]; ok {
		return e.err
	}
	return nil
}

// add holds d under its portal (after a run that met the portal's outage,
// when created says the portal was not held before, or when only join is
// true, a new message of a held portal). With join, d is added only to a
// portal already held; added says whether it was.
func (h *heldPortals[T]) add(d *delivery[T], dep, label string, join bool) (added, created bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	member := d.msg.MemberID
	e := h.portals[member]
	if e == nil {
		if join {
			return false, false
		}
		e = &heldPortal[T]{dep: dep, label: label, since: time.Now()}
		h.portals[member] = e
		created = true
	}
	if !join {
		e.err = d.waitErr
	}
	i, _ := slices.BinarySearchFunc(e.items, d.msg.StreamSeq, func(x *delivery[T], seq uint64) int {
		switch {
		case x.msg.StreamSeq < seq:
			return -1
		case x.msg.StreamSeq > seq:
			return 1
		}
		return 0
	})
	e.items = slices.Insert(e.items, i, d)
	if d.probing {
		d.probing = false // back from its probe: counted already
	} else {
		h.count++
		h.check(e.dep)
	}
	return true, created
}

// take removes and returns member's oldest held messages, as many as one
// batch holds (batchSize distinct entities, at most 10×batchSize
// messages), for the portal's probe to run. They stay counted until they
// come back (add) or the probe reports them done (settled), so the
// consumer does not resume for the length of a probe. When none is left
// it forgets the portal and returns nil with the portal's record (it
// answers again).
func (h *heldPortals[T]) take(member string, batchSize int) ([]*delivery[T], *heldPortal[T]) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.portals[member]
	if len(e.items) == 0 {
		delete(h.portals, member)
		return nil, e
	}
	entities := map[string]bool{}
	n := 0
	for _, d := range e.items {
		if !entities[d.msg.EntityID] && len(entities) == batchSize || n == 10*batchSize {
			break
		}
		entities[d.msg.EntityID] = true
		n++
	}
	chunk := slices.Clone(e.items[:n])
	e.items = slices.Delete(e.items, 0, n)
	for _, d := range chunk {
		d.probing = true
	}
	return chunk, nil
}

// settled uncounts n messages a probe took that did not come back.
func (h *heldPortals[T]) settled(member string, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.count -= n
	h.check(h.portals[member].dep)
}

// release forgets member and returns every message held for it.
func (h *heldPortals[T]) release(member string) ([]*delivery[T], *heldPortal[T]) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.portals[member]
	delete(h.portals, member)
	h.count -= len(e.items)
	h.check(e.dep)
	return e.items, e
}

// hold keeps the messages of batch whose result says only their portal is
// down (see portalWait) and returns the others with their results. Each
// held message reports its RETRY outcome once; a portal held for the first
// time starts its probe.
func (p *pipeline[T]) hold(runCtx, hardStop context.Context, batch []*delivery[T], results []error, dur time.Duration) ([]*delivery[T], []error, int) {
	var rest []*delivery[T]
	var restResults []error
	held := 0
	for i, d := range batch {
		if !portalWait(results[i], d.msg.MemberID) {
			rest, restResults = append(rest, d), append(restResults, results[i])
			continue
		}
		d.waitErr = results[i]
		p.reportWait(d, results[i], dur)
		dep, label := dependencyOf(results[i]), p.m.portals.Value(d.msg.MemberID)
		_, created := p.held.add(d, dep, label, false)
		held++
		if created {
			bg := context.WithoutCancel(d.ctx)
			p.m.down.Add(bg, 1, p.portalAttrs(dep, label))
			p.rt.log.WarnContext(bg, "portal unavailable; its events are held, the consumer goes on with other portals",
				"consumer", p.sp.Durable, "dependency", dep, "member_id", d.msg.MemberID, "error", results[i].Error())
			p.probes.Add(1)
			go p.probe(runCtx, hardStop, d.msg.MemberID)
		}
	}
	return rest, restResults, held
}

// divert holds the messages of batch whose portal is held now (they join
// its held messages instead of calling it) and returns the others.
func (p *pipeline[T]) divert(batch []*delivery[T]) []*delivery[T] {
	var run []*delivery[T]
	for _, d := range batch {
		if d.decodeErr != nil || d.msg.MemberID == "" {
			run = append(run, d)
			continue
		}
		err := p.held.heldFor(d.msg.MemberID)
		if err == nil {
			run = append(run, d)
			continue
		}
		// Reported before it joins: once it has, its probe may run and
		// settle it at any moment, and its RETRY must not come after that.
		p.begin(d)
		d.waitErr = err
		p.reportWait(d, err, 0)
		if added, _ := p.held.add(d, dependencyOf(err), "", true); !added {
			run = append(run, d) // the portal answered meanwhile
		}
	}
	return run
}

// probe runs member's held messages until none is left: the oldest batch
// after a jittered wait that doubles from Spec.ProbeInterval to
// Spec.ProbeMaxInterval while the portal does not answer, and the next
// batch at once after one that got through. When the runtime stops, every
// message still held is handed back (nak at once, for another replica).
func (p *pipeline[T]) probe(runCtx, hardStop context.Context, member string) {
	defer p.probes.Done()
	bo := probeBackoff(p.sp)
	wait := bo.NextBackOff()
	for {
		t := time.NewTimer(wait)
		select {
		case <-runCtx.Done():
		case <-t.C:
		}
		t.Stop()
		if runCtx.Err() != nil {
			// After the reader's last pull is gone: a message naked while
			// it was still open would be delivered to it again, unseen, and
			// come back only after its ack wait.
			<-p.readDone
			items, e := p.held.release(member)
			p.forget(member, e, "runtime stopping")
			var wg sync.WaitGroup
			for _, d := range items {
				wg.Go(func() { p.settle(d.ctx, d.span, d, d.waitErr, 0, true) })
			}
			wg.Wait()
			return
		}
		chunk, e := p.held.take(member, max(1, p.sp.BatchSize))
		if chunk == nil {
			p.forget(member, e, "")
			return
		}
		back := p.runBatch(runCtx, hardStop, chunk)
		p.held.settled(member, len(chunk)-back)
		if back > 0 {
			wait = bo.NextBackOff()
		} else {
			bo.Reset()
			wait = 0
		}
	}
}

// forget lowers the gauge of a portal no longer held and logs why.
func (p *pipeline[T]) forget(member string, e *heldPortal[T], why string) {
	ctx := context.Background()
	p.m.down.Add(ctx, -1, p.portalAttrs(e.dep, e.label))
	if why == "" {
		p.rt.log.InfoContext(ctx, "portal answers; its held events ran", "consumer", p.sp.Durable, "dependency", e.dep,
			"member_id", member, "down_for", time.Since(e.since).Round(time.Millisecond).String())
	} else {
		p.rt.log.InfoContext(ctx, "portal's held events handed back", "consumer", p.sp.Durable, "dependency", e.dep,
			"member_id", member, "reason", why)
	}
}

// errHeldFull is why the consumer pauses when held messages fill its room.
var errHeldFull = errors.New("messages held for unavailable portals fill the consumer's room")

// full pauses (enter) or resumes the whole consumer when the held
// messages came to fill its room or no longer do: the gate stops the
// reader and raises consumer.dependency.down for dep without a portal.
func (p *pipeline[T]) full(enter bool, dep string, count, room int) {
	ctx := context.Background()
	if enter {
		p.rt.log.WarnContext(ctx, "messages held for unavailable portals fill the consumer's room; consumer paused",
			"consumer", p.sp.Durable, "dependency", dep, "held", count, "room", room)
		p.gate.enter(ctx, dep, errHeldFull)
		return
	}
	p.rt.log.InfoContext(ctx, "held messages fit the consumer's room again; consumer resumed",
		"consumer", p.sp.Durable, "dependency", dep, "held", count, "room", room)
	p.gate.leave(ctx, dep, false)
}

// reportWait publishes d's RETRY outcome for waiting on a dependency,
// once per delivery, and notes it on its span and in the log.
func (p *pipeline[T]) reportWait(d *delivery[T], err error, dur time.Duration) {
	if d.reported {
		return
	}
	d.reported = true
	act := Decide(p.sp, Attempt{Delivery: d.msg.Delivery}, err)
	attrs := []attribute.KeyValue{attribute.String("b24.dependency", dependencyOf(err)), attribute.String("error", err.Error())}
	d.span.AddEvent("dependency unavailable", trace.WithAttributes(attrs...))
	p.publishOutcome(context.WithoutCancel(d.ctx), d.span, d, act, err, dur)
	d.msg.Logger.WarnContext(d.ctx, "event waits for a dependency", "dependency", dependencyOf(err),
		"error", err.Error(), "error_kind", act.Kind)
}

// portalAttrs labels consumer.dependency.down for one held portal.
func (p *pipeline[T]) portalAttrs(dep, label string) metric.AddOption {
	return metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", p.sp.Durable),
		attribute.String("dependency", dep), attribute.String("portal", label)))
}

// probeBackoff is the wait between runs of messages whose dependency is
// down: Spec.ProbeInterval doubling, ±50% jitter, up to
// Spec.ProbeMaxInterval, for as long as it takes.
func probeBackoff(sp Spec) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(backoff.WithInitialInterval(sp.ProbeInterval), backoff.WithMaxInterval(sp.ProbeMaxInterval),
		backoff.WithMultiplier(2), backoff.WithRandomizationFactor(0.5), backoff.WithMaxElapsedTime(0))
}
