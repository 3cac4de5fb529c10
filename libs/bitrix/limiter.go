package bitrix

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Rate is a portal's request-rate limit (§4.5): a leaky bucket that drains
// PerSecond requests per second and rejects a request that would take it
// over Burst.
type Rate struct {
	// PerSecond is how fast the bucket drains (Y in §4.5).
	PerSecond float64
	// Burst is the bucket size (X in §4.5): how many requests may arrive at
	// once when it is empty.
	Burst int
}

// Documented rates (§4.5).
var (
	// DefaultRate is every plan except Enterprise: 2 req/s, burst 50.
	DefaultRate = Rate{PerSecond: 2, Burst: 50}
	// EnterpriseRate is 5 req/s, burst 250.
	EnterpriseRate = Rate{PerSecond: 5, Burst: 250}
)

// Validate reports a rate that cannot drain or cannot admit a request.
func (r Rate) Validate() error {
	if r.PerSecond <= 0 || r.Burst < 1 {
		return fmt.Errorf("bitrix: invalid rate %v/s burst %d", r.PerSecond, r.Burst)
	}
	return nil
}

// Limiter admits requests to a portal so that the portal's leaky bucket
// never overflows. The portal key is the member_id. Implementations must be
// safe for concurrent use; sharing one across Clients (or across processes,
// for KVLimiter) is the point.
type Limiter interface {
	// Wait blocks until one request to portal may be sent, or ctx ends.
	Wait(ctx context.Context, portal string, r Rate) error
	// Saturated tells the limiter the portal answered QUERY_LIMIT_EXCEEDED:
	// someone else (another app on the same IP, §4.5) is using the bucket,
	// so treat it as full.
	Saturated(ctx context.Context, portal string, r Rate) error
}

// SlotEstimator is implemented by a Limiter that can tell, without waiting
// and without I/O, the earliest time Wait could grant portal a request.
// The estimate comes from what the limiter last knew (another process may
// have spent slots since), so a caller may find Wait still waits; the zero
// time means now, or not known. Both limiters here implement it.
type SlotEstimator interface {
	NextSlot(portal string, r Rate) time.Time
}

// DefaultMargin is the number of bucket slots a limiter keeps free. The
// limiter counts a request when it grants it, the portal when it arrives; a
// request that arrives d later than granted can make the portal's level
// exceed the limiter's by at most PerSecond*d (leaky buckets are
// shift-monotone), so Margin/PerSecond is the latency the limiter tolerates:
// one second at 2 req/s.
const DefaultMargin = 2.0

// bucket is a leaky bucket level at a point in time.
type bucket struct {
	Level float64   `json:"level"`
	At    time.Time `json:"at"`
}

// drained returns the level at now; it never drains backwards in time, so a
// replica whose clock lags cannot free slots (§ limiter design in kvlimiter.go).
func (b bucket) drained(now time.Time, r Rate) (float64, time.Time) {
	if now.Before(b.At) {
		return b.Level, b.At
	}
	lvl := b.Level - now.Sub(b.At).Seconds()*r.PerSecond
	if lvl < 0 {
		lvl = 0
	}
	return lvl, now
}

func capacity(r Rate, margin float64) float64 {
	c := float64(r.Burst) - margin
	if c < 1 {
		c = 1
	}
	return c
}

func secondsToDuration(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}

// LocalLimiter is an in-process leaky bucket per portal. It is exact for a
// single process and is what a Client uses when no Limiter is configured;
// use KVLimiter when more than one process calls the same portal.
type LocalLimiter struct {
	clock  Clock
	margin float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

// NewLocalLimiter returns a limiter that keeps margin slots free (0 means
// DefaultMargin, negative means none). clock may be nil for the wall clock.
func NewLocalLimiter(margin float64, clock Clock) *LocalLimiter {
	margin = marginOrDefault(margin)
	if clock == nil {
		clock = SystemClock{}
	}
	return &LocalLimiter{clock: clock, margin: margin, buckets: map[string]*bucket{}}
}

var _ Limiter = (*LocalLimiter)(nil)

// Wait reserves the next free slot (the level may run above capacity to
// represent waiters already queued, like a GCRA) and sleeps until it is due.
func (l *LocalLimiter) Wait(ctx context.Context, portal string, r Rate) error {
	if err := r.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	b := l.buckets[portal]
	if b == nil {
		b = &bucket{}
		l.buckets[portal] = b
	}
	now := l.clock.Now()
	lvl, at := b.drained(now, r)
	wait := untilFree(lvl, r, l.margin)
	b.Level, b.At = lvl+1, at
	l.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	if err := l.clock.Sleep(ctx, wait); err != nil {
		l.mu.Lock()
		b.Level-- // give the slot back
		l.mu.Unlock()
		return err
	}
	return nil
}

// NextSlot implements SlotEstimator: exact for this process.
func (l *LocalLimiter) NextSlot(portal string, r Rate) time.Time {
	if r.Validate() != nil {
		return time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[portal]
	if b == nil {
		return time.Time{}
	}
	now := l.clock.Now()
	lvl, _ := b.drained(now, r)
	return slotAfter(now, lvl, r, l.margin)
}

// untilFree is how long a bucket at level lvl takes to admit one more
// request; zero or less when it does at once.
func untilFree(lvl float64, r Rate, margin float64) time.Duration {
	return secondsToDuration((lvl + 1 - capacity(r, margin)) / r.PerSecond)
}

// slotAfter is when a bucket at level lvl at now admits one more request:
// the zero time when it does at once.
func slotAfter(now time.Time, lvl float64, r Rate, margin float64) time.Time {
	wait := untilFree(lvl, r, margin)
	if wait <= 0 {
		return time.Time{}
	}
	return now.Add(wait)
}

// Saturated fills the bucket to capacity.
func (l *LocalLimiter) Saturated(_ context.Context, portal string, r Rate) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[portal]
	if b == nil {
		b = &bucket{}
		l.buckets[portal] = b
	}
	lvl, at := b.drained(l.clock.Now(), r)
	if c := capacity(r, l.margin); lvl < c {
		lvl = c
	}
	b.Level, b.At = lvl, at
	return nil
}

func marginOrDefault(m float64) float64 {
	switch {
	case m == 0:
		return DefaultMargin
	case m < 0:
		return 0
	}
	return m
}
