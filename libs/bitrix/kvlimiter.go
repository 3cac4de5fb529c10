package bitrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KVLimiter is a Limiter whose leaky bucket per portal lives in a NATS KV
// bucket, so every goroutine, service and replica calling the same portal
// shares one budget (§4.5: "applications on a single server… share a common
// request rate limit").
//
// Design. The KV value under the portal key is the bucket {level, at}. A
// grant reads it, drains it to now, and writes level+n back with a
// revision-checked update (kv.Update(key, value, lastRevision)); a
// concurrent writer makes the update fail and the grant retry on fresh
// state, so no two processes can spend the same slot. The fast path: within
// one process, waiters for a portal queue behind a single in-flight KV
// round-trip, and that round-trip reserves one slot per queued waiter (up to
// MaxLease), which later waiters take without touching KV.
//
// Why it never over-grants. Slots are counted in KV before they are used;
// a slot that is used later than it was counted (a leased slot, network
// latency to the portal) can raise the portal's real level above the
// accounted one by at most rate×delay, because a leaky bucket is
// shift-monotone. Leases therefore expire after Margin/(2×rate) and Margin
// slots stay free, which leaves Margin/(2×rate) for latency: 500ms at
// 2 req/s with the default margin of 2. Unused leased slots are simply
// wasted (counted, never sent), which errs on the safe side.
//
// Clocks. Levels are drained with the writer's clock and never backwards:
// a replica whose clock is behind the last writer's drains nothing until it
// catches up. A replica whose clock is ahead by d over-drains by rate×d,
// which the margin must also cover; keep replicas NTP-synced.
//
// If NATS is unreachable, Wait fails (the client reports a transient error)
// rather than guessing.
type KVLimiter struct {
	kv       jetstream.KeyValue
	clock    Clock
	margin   float64
	maxLease int

	mu      sync.Mutex
	portals map[string]*kvPortal
}

// KVLimiterConfig tunes a KVLimiter. Zero values take the defaults.
type KVLimiterConfig struct {
	// Margin is the number of slots kept free. Default DefaultMargin (2);
	// negative means none.
	Margin float64
	// MaxLease caps the slots one KV round-trip reserves for queued local
	// waiters. Default 10.
	MaxLease int
	// Clock defaults to the wall clock.
	Clock Clock
}

type kvPortal struct {
	sem     chan struct{} // one KV round-trip per portal per process
	waiters atomic.Int32
	stale   atomic.Bool // set by Saturated
	// next is NextSlot's answer (unix nanoseconds; 0 for now or not
	// known), set by Wait after every grant.
	next atomic.Int64

	// guarded by sem
	known   bool
	state   bucket
	rev     uint64
	granted int
	expires time.Time
}

// NewKVLimiter returns a limiter over kv. The bucket must keep one revision
// per key and may let idle keys expire (a bucket drains completely in
// burst/rate seconds, so nothing is lost). The platform's bucket is
// eventbus.BucketRateLimit ("B24_RATELIMIT", TTL 1h), provisioned by
// eventbus.Provision; every service binds that one, so that every replica
// of every service shares one leaky bucket per portal. This package does
// not create or name buckets.
func NewKVLimiter(kv jetstream.KeyValue, cfg KVLimiterConfig) (*KVLimiter, error) {
	if kv == nil {
		return nil, errors.New("bitrix: KVLimiter needs a KeyValue bucket")
	}
	if cfg.MaxLease < 0 {
		return nil, errors.New("bitrix: KVLimiter MaxLease must not be negative")
	}
	if cfg.MaxLease == 0 {
		cfg.MaxLease = 10
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	return &KVLimiter{kv: kv, clock: cfg.Clock, margin: marginOrDefault(cfg.Margin), maxLease: cfg.MaxLease,
		portals: map[string]*kvPortal{}}, nil
}

var _ Limiter = (*KVLimiter)(nil)

func (l *KVLimiter) portal(key string) *kvPortal {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.portals[key]
	if p == nil {
		p = &kvPortal{sem: make(chan struct{}, 1)}
		l.portals[key] = p
	}
	return p
}

// leaseTTL is how long reserved slots stay usable: half the latency budget
// the margin buys (see the type documentation).
func (l *KVLimiter) leaseTTL(r Rate) time.Duration {
	return secondsToDuration(l.margin / (2 * r.PerSecond))
}

// Wait implements Limiter.
func (l *KVLimiter) Wait(ctx context.Context, portal string, r Rate) error {
	if err := r.Validate(); err != nil {
		return err
	}
	p := l.portal(portal)
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.sem }()
	for {
		now := l.clock.Now()
		if p.stale.Swap(false) {
			p.known, p.granted = false, 0
		}
		if p.granted > 0 && now.Before(p.expires) {
			p.granted--
			l.noteNext(p, now, r)
			return nil
		}
		p.granted = 0
		want := min(max(int(p.waiters.Load()), 1), l.maxLease)
		n, wait, err := l.reserve(ctx, p, portal, r, want)
		if err != nil {
			return err
		}
		if n > 0 {
			p.granted, p.expires = n-1, now.Add(l.leaseTTL(r))
			l.noteNext(p, now, r)
			return nil
		}
		if err := l.clock.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// noteNext records, after a grant at now, when p's next slot comes (see
// NextSlot): now while leased slots are left, else when the bucket as this
// process last wrote it admits one more. Called with p.sem held.
func (l *KVLimiter) noteNext(p *kvPortal, now time.Time, r Rate) {
	var next time.Time
	if p.granted == 0 {
		lvl, _ := p.state.drained(now, r)
		next = slotAfter(now, lvl, r, l.margin)
	}
	if next.IsZero() {
		p.next.Store(0)
	} else {
		p.next.Store(next.UnixNano())
	}
}

// NextSlot implements SlotEstimator from this process's last grant: a
// lower bound when other processes spend the portal's slots too (their
// grants show up in Wait, which then waits longer).
func (l *KVLimiter) NextSlot(portal string, _ Rate) time.Time {
	l.mu.Lock()
	p := l.portals[portal]
	l.mu.Unlock()
	if p == nil || p.stale.Load() {
		return time.Time{}
	}
	if n := p.next.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// reserve takes up to want slots with a compare-and-swap, or says how long
// to wait for one.
func (l *KVLimiter) reserve(ctx context.Context, p *kvPortal, portal string, r Rate, want int) (int, time.Duration, error) {
	key := kvKey(portal)
	for range 1000 {
		if !p.known {
			if err := l.load(ctx, p, key); err != nil {
				return 0, 0, err
			}
		}
		lvl, at := p.state.drained(l.clock.Now(), r)
		c := capacity(r, l.margin)
		avail := int(math.Floor(c - lvl + 1e-9))
		if avail < 1 {
			// The cached state can only under-estimate the level, so this
			// wait is a lower bound; a stale cache shows up as a conflict.
			return 0, max(untilFree(lvl, r, l.margin), time.Millisecond), nil
		}
		n := min(want, avail)
		next := bucket{Level: lvl + float64(n), At: at}
		data, _ := json.Marshal(next)
		var (
			rev uint64
			err error
		)
		if p.rev == 0 {
			rev, err = l.kv.Create(ctx, key, data)
		} else {
			rev, err = l.kv.Update(ctx, key, data, p.rev)
		}
		switch {
		case err == nil:
			p.state, p.rev = next, rev
			return n, 0, nil
		case isRevisionConflict(err):
			p.known = false // someone else spent slots; re-read
		default:
			return 0, 0, fmt.Errorf("bitrix: limiter update %s: %w", key, err)
		}
	}
	return 0, 0, fmt.Errorf("bitrix: limiter %s: too much contention", key)
}

func (l *KVLimiter) load(ctx context.Context, p *kvPortal, key string) error {
	e, err := l.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		p.state, p.rev = bucket{}, 0
	case err != nil:
		return fmt.Errorf("bitrix: limiter read %s: %w", key, err)
	default:
		var b bucket
		// An unreadable value (another format) is overwritten by the next
		// compare-and-swap; until then it counts as empty. The margin does
		// not cover this, but nothing else writes these keys.
		_ = json.Unmarshal(e.Value(), &b)
		p.state, p.rev = b, e.Revision()
	}
	p.known = true
	return nil
}

// Saturated marks the shared bucket full, so every replica backs off.
func (l *KVLimiter) Saturated(ctx context.Context, portal string, r Rate) error {
	p := l.portal(portal)
	p.stale.Store(true)
	key := kvKey(portal)
	for range 100 {
		var (
			b   bucket
			rev uint64
		)
		e, err := l.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("bitrix: limiter read %s: %w", key, err)
		default:
			_ = json.Unmarshal(e.Value(), &b)
			rev = e.Revision()
		}
		lvl, at := b.drained(l.clock.Now(), r)
		c := capacity(r, l.margin)
		if lvl >= c {
			return nil
		}
		data, _ := json.Marshal(bucket{Level: c, At: at})
		if rev == 0 {
			_, err = l.kv.Create(ctx, key, data)
		} else {
			_, err = l.kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		if !isRevisionConflict(err) {
			return fmt.Errorf("bitrix: limiter update %s: %w", key, err)
		}
	}
	return nil
}

var kvKeyUnsafe = regexp.MustCompile(`[^-_=.a-zA-Z0-9]`)

// kvKey maps a portal key (a hex member_id, or a host:port) to a valid KV
// key.
func kvKey(portal string) string { return "portal." + kvKeyUnsafe.ReplaceAllString(portal, "_") }
