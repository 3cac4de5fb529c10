package consumer

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// outageGate is one consumer's view of the dependencies every message
// shares: how many batches wait for each one. While any batch waits the
// reader fetches nothing (the consumer is paused); when one of them gets
// through, the others are woken to try at once instead of finishing their
// backoff. A portal that does not answer does not go through the gate (its
// messages are held, see held.go) unless its held messages fill the
// consumer's room.
type outageGate struct {
	consumer string
	log      *slog.Logger
	down     metric.Int64UpDownCounter

	mu       sync.Mutex
	waiting  map[string]int       // dependency → batches waiting for it
	since    map[string]time.Time // dependency → when it was first seen down
	total    int                  // batches waiting, any dependency
	open     chan struct{}        // closed while total == 0
	answered chan struct{}        // closed and replaced when a waiting batch got through
}

func newOutageGate(consumer string, log *slog.Logger, down metric.Int64UpDownCounter) *outageGate {
	open := make(chan struct{})
	close(open)
	return &outageGate{consumer: consumer, log: log, down: down, waiting: map[string]int{}, since: map[string]time.Time{},
		open: open, answered: make(chan struct{})}
}

// enter records a batch waiting for dep. The first one pauses the reader,
// raises the gauge and logs what is down.
func (g *outageGate) enter(ctx context.Context, dep string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total == 0 {
		g.open = make(chan struct{})
	}
	g.total++
	g.waiting[dep]++
	if g.waiting[dep] == 1 {
		g.since[dep] = time.Now()
		g.down.Add(ctx, 1, g.attrs(dep))
		g.log.WarnContext(ctx, "dependency unavailable; consumer paused until it answers",
			"consumer", g.consumer, "dependency", dep, "error", err.Error())
	}
}

// leave records that a batch no longer waits for dep; answered says it got
// through (the dependency answers), which wakes every other waiting batch.
func (g *outageGate) leave(ctx context.Context, dep string, answered bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	g.waiting[dep]--
	if g.waiting[dep] == 0 {
		delete(g.waiting, dep)
		g.down.Add(ctx, -1, g.attrs(dep))
		g.log.InfoContext(ctx, "dependency answers; consumer resumed", "consumer", g.consumer, "dependency", dep,
			"down_for", time.Since(g.since[dep]).Round(time.Millisecond).String())
		delete(g.since, dep)
	}
	if answered {
		close(g.answered)
		g.answered = make(chan struct{})
	}
	if g.total == 0 {
		close(g.open)
	}
}

// wake returns a channel closed when some waiting batch gets through.
func (g *outageGate) wake() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.answered
}

// wait blocks until no batch waits for a dependency or ctx ends.
func (g *outageGate) wait(ctx context.Context) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *outageGate) attrs(dep string) metric.AddOption {
	return metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", g.consumer), attribute.String("dependency", dep)))
}

// credits bound the messages a pipeline holds: fetched and not yet
// settled. The reader asks the server only for as many messages as it has
// credits, so every message the server delivered is already tracked (kept
// in progress) by the runtime; none waits unseen in a client buffer while
// its ack wait runs out.
type credits struct {
	mu     sync.Mutex
	free   int
	signal chan struct{}
}

func newCredits(n int) *credits { return &credits{free: n, signal: make(chan struct{}, 1)} }

// take waits until at least low credits are free (or ctx ends) and takes
// every free one.
func (c *credits) take(ctx context.Context, low int) (int, error) {
	for {
		c.mu.Lock()
		if c.free >= low {
			n := c.free
			c.free = 0
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-c.signal:
		}
	}
}

// give returns n credits.
func (c *credits) give(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.free += n
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}
