package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// pipeline runs one registered consumer: a reader pulls messages, a
// collector groups them per portal into batches, and Spec.Concurrency
// workers call the handler and settle each message.
type pipeline[T any] struct {
	rt  *Runtime
	sp  Spec
	dec Decoder[T]
	h   BatchHandler[T]
	m   *metrics

	credits *credits
	gate    *outageGate
	held    *heldPortals[T]
	probes  sync.WaitGroup // one per held portal
	// readDone is closed when the reader has stopped: its last pull is
	// gone, so a message handed back (nak) cannot land in it unseen.
	readDone chan struct{}

	mu       sync.Mutex
	inflight map[*delivery[T]]struct{}
}

// delivery is one received message on its way through the pipeline.
type delivery[T any] struct {
	raw       jetstream.Msg
	msg       *Message[T]
	decodeErr error
	parent    context.Context // trace context extracted from the headers
	received  time.Time
	progress  time.Time // last InProgress (or receipt)

	// ctx and span are the message's processing span, from its first run
	// (or from joining a held portal) to its settlement.
	ctx  context.Context
	span trace.Span
	// waitErr is the error a held message waits on (see held.go), and
	// reported says its RETRY outcome for the wait was published.
	waitErr  error
	reported bool
	// probing says a held message is out with its portal's probe.
	probing bool
}

func (p *pipeline[T]) spec() Spec { return p.sp }

func (p *pipeline[T]) config() jetstream.ConsumerConfig { return p.sp.ConsumerConfig() }

func (p *pipeline[T]) run(ctx, hardStop context.Context, cons jetstream.Consumer) error {
	p.inflight = map[*delivery[T]]struct{}{}
	p.credits = newCredits(p.pullMax())
	p.gate = newOutageGate(p.sp.Durable, p.rt.log, p.m.down)
	p.held = &heldPortals[T]{portals: map[string]*heldPortal[T]{}, room: p.pullMax() - p.pullLow(), onFull: p.full}
	// in never blocks the reader: the credits bound what it holds.
	in := make(chan *delivery[T], p.pullMax())
	batches := make(chan []*delivery[T])
	readErr := make(chan error, 1)
	p.readDone = make(chan struct{})
	go func() {
		defer close(p.readDone)
		readErr <- p.read(ctx, cons, in)
	}()
	// done never blocks a worker: each batch holds at least one of the
	// pullMax messages the pipeline holds at most.
	done := make(chan string, p.pullMax())
	go p.collect(in, batches, done)

	progressDone := make(chan struct{})
	go p.keepAlive(progressDone)
	runElastic(batches, p.sp.Concurrency, p.sp.MaxConcurrency, ElasticIdle, func(b []*delivery[T]) {
		p.process(ctx, hardStop, b)
		p.handled(done, b)
	})
	p.probes.Wait() // they hand their held messages back once ctx ends
	close(progressDone)
	p.rt.log.InfoContext(context.WithoutCancel(ctx), "consumer drained", "consumer", p.sp.Durable)
	return <-readErr
}

// pullMax is how many messages the pipeline holds at most (fetched, not
// yet settled): enough for every worker's batch and the next one.
func (p *pipeline[T]) pullMax() int {
	return max(1, min(max(p.sp.Concurrency, p.sp.MaxConcurrency)*p.sp.BatchSize*2, p.sp.MaxAckPending, maxHold))
}

// pullLow is the fewest credits the reader asks the server for at once.
func (p *pipeline[T]) pullLow() int { return max(1, p.pullMax()/4) }

// fetchWait is how long one pull request waits for messages. The client
// keeps a tenth of it (nats.go's FetchContext) for the server's last
// messages to arrive: a message sent just before the server ends the pull
// and read after the client's deadline is dropped and comes again only
// after AckWait. With 1 s (100 ms to spare) that was 15 of 7,500 events
// at 300 events/s on a busy machine (bench e2e), each 30 s late.
const fetchWait = 5 * time.Second

// read fetches messages into in until ctx ends or the connection is closed
// for good. It asks the server only for as many messages as the pipeline
// has credits, and tracks each one (InProgress) the moment it arrives, so
// no message waits unseen in a client buffer past its ack wait and comes
// again while the first copy is still held. While a dependency is down it
// fetches nothing. A consumer that vanished (deleted by an operator) or a
// broken pull is recreated from the Spec after a pause.
func (p *pipeline[T]) read(ctx context.Context, cons jetstream.Consumer, in chan<- *delivery[T]) error {
	defer close(in)
	low := p.pullLow()
	for {
		n, err := p.credits.take(ctx, low)
		if err != nil {
			return nil
		}
		if p.gate.wait(ctx) != nil {
			p.credits.give(n)
			return nil
		}
		// The pull ends when ctx does: nothing is fetched during the drain.
		fctx, cancel := context.WithTimeout(ctx, fetchWait)
		batch, err := cons.Fetch(n, jetstream.FetchContext(fctx))
		if err == nil {
			got := 0
			for m := range batch.Messages() {
				got++
				in <- p.receive(m)
			}
			p.credits.give(n - got)
			err = batch.Error()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				err = nil // the pull expired
			}
			if err == nil || errors.Is(err, jetstream.ErrNoHeartbeat) && ctx.Err() == nil {
				cancel()
				continue // an empty or short pull, or a broker restart the next pull recovers from
			}
		} else {
			p.credits.give(n)
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
			return fmt.Errorf("consumer %s: %w", p.sp.Durable, err)
		}
		p.rt.log.WarnContext(ctx, "consumer pull interrupted; recreating", "consumer", p.sp.Durable, "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		if c, err := p.rt.js.CreateOrUpdateConsumer(ctx, p.sp.Stream, p.sp.ConsumerConfig()); err == nil {
			cons = c
		} else if ctx.Err() == nil {
			p.rt.log.WarnContext(ctx, "consumer recreate failed", "consumer", p.sp.Durable, "error", err)
		}
	}
}

// group is one portal's messages waiting to be handed over as a batch.
type group[T any] struct {
	key      string
	items    []*delivery[T]
	entities map[string]struct{}
	deadline time.Time
}

// full says g takes no more messages: BatchSize distinct entities, or
// 10×BatchSize messages.
func (g *group[T]) full(size int) bool {
	return len(g.entities) >= size || len(g.items) >= 10*size
}

// collect groups messages per portal into batches. A portal's group takes
// its messages (repeated events about one entity coalesce into it without
// counting) until it is full — BatchSize distinct entities or 10×BatchSize
// messages — or BatchWindow has passed since its first message; it is then
// due, and the due group that has waited longest is handed over as soon as
// a handler call takes it. Until then a due group goes on taking its
// portal's messages: under a backlog, when every handler call is busy,
// batches grow instead of queueing small, so one REST call and one
// transaction cover more events. With Spec.OneBatchPerMember a group that
// is not full stays open past its window while its portal's previous batch
// is still being handled (done reports each handled batch's portal), and
// with a Pacer handler until its portal's ReadyAt.
// A portal's groups are handed over in the order they were opened.
func (p *pipeline[T]) collect(in <-chan *delivery[T], out chan<- []*delivery[T], done <-chan string) {
	defer close(out)
	if p.sp.BatchWindow <= 0 {
		for d := range in {
			out <- []*delivery[T]{d}
		}
		return
	}
	size := p.sp.BatchSize
	// groups holds every portal's groups, oldest first; only the last can
	// still take messages.
	groups := map[string][]*group[T]{}
	busy := map[string]int{} // batches handed over and not yet handled, per portal
	var single [][]*delivery[T]
	every := max(p.sp.BatchWindow/4, 5*time.Millisecond)
	pacer, _ := p.h.(Pacer)
	if pacer != nil {
		every = min(every, 10*time.Millisecond) // a slot is missed by at most this
	}
	// ready says whether the pacer lets key's group g go: its portal's next
	// slot has come, or g has waited ten windows.
	ready := func(key string, g *group[T], now time.Time) bool {
		return pacer == nil || !now.Before(pacer.ReadyAt(key)) || !now.Before(g.deadline.Add(10*p.sp.BatchWindow))
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		now := time.Now()
		// The next batch to hand over: an undecodable message alone, or the
		// due group that has waited longest.
		var next []*delivery[T]
		var nextGroup *group[T]
		if len(single) > 0 {
			next = single[0]
		} else {
			for key, gs := range groups {
				g := gs[0]
				due := g.full(size) || !now.Before(g.deadline) && (!p.sp.OneBatchPerMember || busy[key] == 0) && ready(key, g, now)
				if due && (nextGroup == nil || g.deadline.Before(nextGroup.deadline)) {
					nextGroup = g
				}
			}
			if nextGroup != nil {
				next = nextGroup.items
			}
		}
		send := out
		if next == nil {
			send = nil
		}
		select {
		case d, ok := <-in:
			if !ok {
				for _, b := range single {
					out <- b
				}
				for _, gs := range groups {
					for _, g := range gs {
						out <- g.items
					}
				}
				return
			}
			if d.decodeErr != nil {
				single = append(single, []*delivery[T]{d})
				continue
			}
			key := d.msg.MemberID
			gs := groups[key]
			var g *group[T]
			if len(gs) > 0 && !gs[len(gs)-1].full(size) {
				g = gs[len(gs)-1]
			} else {
				g = &group[T]{key: key, entities: map[string]struct{}{}, deadline: time.Now().Add(p.sp.BatchWindow)}
				groups[key] = append(gs, g)
			}
			g.items = append(g.items, d)
			g.entities[d.msg.EntityID] = struct{}{}
		case send <- next:
			if nextGroup == nil {
				single = single[1:]
				continue
			}
			key := nextGroup.key
			if gs := groups[key][1:]; len(gs) > 0 {
				groups[key] = gs
			} else {
				delete(groups, key)
			}
			busy[key]++
		case key := <-done:
			if busy[key]--; busy[key] <= 0 {
				delete(busy, key)
			}
		case <-tick.C: // a window may have ended
		}
	}
}

// handled reports batch, handed over by collect, as handled: its portal
// may have its next batch (Spec.OneBatchPerMember).
func (p *pipeline[T]) handled(done chan<- string, batch []*delivery[T]) {
	if p.sp.BatchWindow > 0 && len(batch) > 0 && batch[0].decodeErr == nil {
		done <- batch[0].msg.MemberID
	}
}

// receive decodes m and starts tracking it for InProgress.
func (p *pipeline[T]) receive(m jetstream.Msg) *delivery[T] {
	now := time.Now()
	d := &delivery[T]{raw: m, received: now, progress: now}
	raw := RawMessage{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
	if raw.Header == nil {
		raw.Header = nats.Header{}
	}
	payload, meta, err := p.dec(raw)
	if err != nil {
		meta = fallbackMeta(raw)
		d.decodeErr = fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	if meta.EventID == "" {
		meta.EventID = raw.Header.Get(eventbus.HeaderMsgID)
	}
	msg := &Message[T]{Meta: meta, Payload: payload, Subject: raw.Subject, Header: raw.Header}
	if md, err := m.Metadata(); err == nil {
		msg.Delivery, msg.StreamSeq, msg.Published = md.NumDelivered, md.Sequence.Stream, md.Timestamp
	} else {
		msg.Delivery = 1
	}
	msg.LastDelivery = msg.Delivery >= uint64(p.sp.MaxDeliver)
	if msg.EventID == "" {
		msg.EventID = fmt.Sprintf("%s-%d", p.sp.Stream, msg.StreamSeq)
	}
	d.parent = eventbus.Propagator().Extract(context.Background(), eventbus.HeaderCarrier(raw.Header))
	msg.Trace = trace.SpanContextFromContext(d.parent)
	msg.Logger = p.rt.log.With("consumer", p.sp.Durable, "member_id", meta.MemberID, "event", meta.Event,
		"entity_id", meta.EntityID, "event_id", msg.EventID, "delivery", msg.Delivery, "stream_seq", msg.StreamSeq)
	d.msg = msg
	p.mu.Lock()
	p.inflight[d] = struct{}{}
	p.mu.Unlock()
	return d
}

// keepAlive sends InProgress for every message held longer than a third of
// AckWait (waiting in a batch window, queued for a worker or in a slow
// handler), so the server does not redeliver work that is progressing.
func (p *pipeline[T]) keepAlive(done <-chan struct{}) {
	every := max(p.sp.AckWait/3, 10*time.Millisecond)
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			p.mu.Lock()
			var due []*delivery[T]
			for d := range p.inflight {
				if now.Sub(d.progress) >= every {
					d.progress = now
					due = append(due, d)
				}
			}
			p.mu.Unlock()
			for _, d := range due {
				_ = d.raw.InProgress()
			}
		}
	}
}

// process runs the handler on one batch and settles every message in it,
// but for the messages of a portal held now (they join its held messages,
// see held.go).
func (p *pipeline[T]) process(runCtx, hardStop context.Context, batch []*delivery[T]) {
	if runCtx.Err() == nil {
		batch = p.divert(batch)
	}
	if len(batch) > 0 {
		p.runBatch(runCtx, hardStop, batch)
	}
}

// begin starts d's processing span and records its lag, once.
func (p *pipeline[T]) begin(d *delivery[T]) {
	if d.span != nil {
		return
	}
	d.ctx, d.span = p.startSpan(d)
	if !d.msg.Published.IsZero() {
		p.m.lag.Record(d.ctx, time.Since(d.msg.Published).Seconds(), p.m.attrs)
	}
}

// runBatch runs the handler on batch; waits out (waitOut) the messages
// whose dependency every message shares, holds (hold) those whose portal
// is down, settles the rest, and returns how many it held.
func (p *pipeline[T]) runBatch(runCtx, hardStop context.Context, batch []*delivery[T]) int {
	start := time.Now()
	for _, d := range batch {
		p.begin(d)
	}

	results := make([]error, len(batch))
	var handled []*Message[T]
	var handledIdx []int
	seen := map[string]bool{}
	for i, d := range batch {
		switch {
		case d.decodeErr != nil:
			results[i] = d.decodeErr
		case seen[d.msg.EventID]:
			results[i] = Skip("duplicate in batch")
		default:
			seen[d.msg.EventID] = true
			handled = append(handled, d.msg)
			handledIdx = append(handledIdx, i)
		}
	}
	if len(handled) > 0 {
		hctx := batch[handledIdx[0]].ctx
		var bspan trace.Span
		if len(batch) > 1 {
			links := make([]trace.Link, len(batch))
			for i, d := range batch {
				links[i] = trace.Link{SpanContext: d.span.SpanContext()}
			}
			hctx, bspan = p.rt.tracer.Start(context.Background(), "process batch "+p.sp.Durable,
				trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
				trace.WithAttributes(
					attribute.String("messaging.system", "nats"),
					semconv.MessagingOperationTypeProcess,
					semconv.MessagingConsumerGroupName(p.sp.Durable),
					semconv.MessagingBatchMessageCount(len(batch)),
					attribute.String("b24.member_id", batch[0].msg.MemberID)))
			// And back: from one event's trace, its message span leads to
			// the batch that did the REST and database work for it.
			for _, d := range batch {
				d.span.AddLink(trace.Link{SpanContext: bspan.SpanContext()})
			}
		}
		errs := p.call(hctx, hardStop, handled)
		if bspan != nil {
			if firstErr := errors.Join(errs...); firstErr != nil {
				bspan.SetStatus(codes.Error, "some messages failed")
			}
			bspan.End()
		}
		for k, i := range handledIdx {
			results[i] = errs[k]
		}
	}

	dur := time.Since(start)
	held := 0
	if runCtx.Err() == nil {
		dur = p.waitOut(runCtx, hardStop, batch, results, dur)
	}
	if runCtx.Err() == nil {
		batch, results, held = p.hold(runCtx, hardStop, batch, results, dur)
	}
	shutting := runCtx.Err() != nil
	var wg sync.WaitGroup
	for i, d := range batch {
		wg.Go(func() { p.settle(d.ctx, d.span, d, results[i], dur, shutting) })
	}
	wg.Wait()
	return held
}

// waitOut runs again, until they get through or the runtime stops, the
// messages of batch whose result says a dependency every message shares is
// down (not only their portal: those are held, see hold): the consumer is
// paused meanwhile (the reader fetches nothing), the messages stay in
// progress (keepAlive), and no delivery is spent. The wait between runs
// starts at Spec.ProbeInterval and doubles, jittered, up to
// Spec.ProbeMaxInterval; a run of another batch that got through cuts it
// short. Each waiting message reports one RETRY outcome (kind
// "unavailable" or the error's own). It updates results in place and
// returns the duration of the last handler call.
func (p *pipeline[T]) waitOut(runCtx, hardStop context.Context, batch []*delivery[T], results []error, dur time.Duration) time.Duration {
	shared := func(i int) bool { return isUnavailable(results[i]) && !portalWait(results[i], batch[i].msg.MemberID) }
	var idx []int
	for i := range results {
		if shared(i) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return dur
	}
	bg := context.WithoutCancel(runCtx)
	dep := dependencyOf(results[idx[0]])
	p.gate.enter(bg, dep, results[idx[0]])
	answered := false
	defer func() { p.gate.leave(bg, dep, answered) }()
	for _, i := range idx {
		p.reportWait(batch[i], results[i], dur)
	}
	bo := probeBackoff(p.sp)
	for {
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-runCtx.Done():
			t.Stop()
			return dur
		case <-p.gate.wake():
			t.Stop()
		case <-t.C:
		}
		msgs := make([]*Message[T], len(idx))
		for k, i := range idx {
			msgs[k] = batch[i].msg
		}
		start := time.Now()
		errs := p.call(batch[idx[0]].ctx, hardStop, msgs)
		dur = time.Since(start)
		var still []int
		for k, i := range idx {
			results[i] = errs[k]
			if shared(i) {
				still = append(still, i)
			}
		}
		if len(still) == 0 {
			// Messages whose portal is down now are held by the caller.
			answered = true
			return dur
		}
		if now := dependencyOf(results[still[0]]); now != dep || len(still) < len(idx) {
			// Part got through, or what is down changed (the database is
			// back, NATS is not): the gauge follows.
			p.gate.leave(bg, dep, len(still) < len(idx))
			dep = now
			p.gate.enter(bg, dep, results[still[0]])
		}
		idx = still
	}
}

// call runs the handler with panics recovered and normalises its results.
func (p *pipeline[T]) call(ctx, hardStop context.Context, msgs []*Message[T]) (errs []error) {
	// The handler's context outlives the run context (the drain lets it
	// finish) but not the drain timeout.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(hardStop, cancel)
	defer stop()
	if p.sp.HandlerTimeout > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, p.sp.HandlerTimeout)
		defer c()
	}
	defer func() {
		if v := recover(); v != nil {
			perr := &PanicError{Value: v, Stack: debug.Stack()}
			p.rt.log.ErrorContext(ctx, "handler panic", "consumer", p.sp.Durable, "panic", fmt.Sprint(v), "stack", string(perr.Stack))
			errs = FailAll(len(msgs), perr)
		}
	}()
	if hardStop.Err() != nil {
		return FailAll(len(msgs), fmt.Errorf("not started: %w", context.Canceled))
	}
	errs = p.h.HandleBatch(ctx, msgs)
	switch {
	case errs == nil:
		errs = make([]error, len(msgs))
	case len(errs) != len(msgs):
		errs = FailAll(len(msgs), fmt.Errorf("batch handler returned %d results for %d messages", len(errs), len(msgs)))
	}
	return errs
}

func (p *pipeline[T]) startSpan(d *delivery[T]) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingConsumerGroupName(p.sp.Durable),
		semconv.MessagingDestinationName(d.msg.Subject),
		semconv.MessagingMessageID(d.msg.EventID),
		attribute.String("messaging.nats.stream", p.sp.Stream),
		attribute.Int64("messaging.nats.stream_sequence", int64(d.msg.StreamSeq)),
		attribute.Int64("messaging.nats.num_delivered", int64(d.msg.Delivery)),
		attribute.String("b24.member_id", d.msg.MemberID),
		attribute.String("b24.event", d.msg.Event),
		attribute.String("b24.entity_id", d.msg.EntityID),
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	if d.msg.Trace.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: d.msg.Trace}))
	}
	return p.rt.tracer.Start(d.parent, "process "+p.sp.Durable, opts...)
}
