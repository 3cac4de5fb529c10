package fakeportal

import (
	"time"
)

// bucket is the portal's leaky bucket (§4.5): every request adds 1, the level
// drains at rate per second, and a request that would take it over burst is
// rejected with QUERY_LIMIT_EXCEEDED. Rejected requests do not add to the
// level (the docs do not say; this is the lenient reading, and it is what
// makes "QUERY_LIMIT_EXCEEDED is always safe to retry" true).
type bucket struct {
	level float64
	at    time.Time
	max   float64
}

// admit drains to now and adds one request if it fits.
func (b *bucket) admit(now time.Time, rate float64, burst int) bool {
	if !b.at.IsZero() && now.After(b.at) {
		b.level -= now.Sub(b.at).Seconds() * rate
		if b.level < 0 {
			b.level = 0
		}
	}
	if now.After(b.at) {
		b.at = now
	}
	if b.level+1 > float64(burst)+1e-9 {
		return false
	}
	b.level++
	if b.level > b.max {
		b.max = b.level
	}
	return true
}

// operating tracks execution time per (app or webhook, method) over a
// sliding window (§4.6: ten one-minute baskets).
type operating struct {
	spent   map[string][]spend
	blocked map[string]time.Time // forced blocks from Portal.BlockMethod
}

type spend struct {
	at   time.Time
	cost time.Duration
}

func newOperating() *operating {
	return &operating{spent: map[string][]spend{}, blocked: map[string]time.Time{}}
}

// check reports whether key may run now and, if not, when it resets. It also
// returns the seconds used so far, for the "operating" field.
func (o *operating) check(key string, now time.Time, limit, window time.Duration) (ok bool, resetAt time.Time, used time.Duration) {
	if until, b := o.blocked[key]; b {
		if now.Before(until) {
			return false, until, limit
		}
		delete(o.blocked, key)
	}
	list := o.spent[key]
	i := 0
	for i < len(list) && now.Sub(list[i].at) >= window {
		i++
	}
	list = list[i:]
	o.spent[key] = list
	for _, s := range list {
		used += s.cost
	}
	if len(list) > 0 {
		resetAt = list[0].at.Add(window)
	}
	return used < limit || limit <= 0, resetAt, used
}

func (o *operating) add(key string, now time.Time, cost time.Duration) {
	if cost > 0 {
		o.spent[key] = append(o.spent[key], spend{now, cost})
	}
}
