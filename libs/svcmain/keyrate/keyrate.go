// Package keyrate bounds how often one key (a client address) may do
// something costly or sensitive at a service's edge: an install
// verification at the ingress, a failed sign-in at the monitor. Each key
// gets a token bucket (golang.org/x/time/rate); keys live in an LRU of
// bounded size, so a flood from many addresses cannot grow memory either.
package keyrate

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Limiter is a token bucket per key. It is safe for concurrent use.
type Limiter struct {
	every time.Duration
	burst int
	mu    sync.Mutex
	keys  *simplelru.LRU[string, *rate.Limiter]
}

// New returns a Limiter allowing each key a burst of burst, then one every
// every, remembering at most size keys (the least recently used go first,
// and come back with a full bucket). size and burst must be positive.
func New(every time.Duration, burst, size int) *Limiter {
	keys, err := simplelru.NewLRU[string, *rate.Limiter](size, nil)
	if err != nil {
		panic("keyrate: " + err.Error()) // size <= 0: a programming error
	}
	return &Limiter{every: every, burst: burst, keys: keys}
}

func (l *Limiter) bucket(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.keys.Get(key)
	if !ok {
		b = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.keys.Add(key, b)
	}
	return b
}

// Allow spends one of key's tokens; false means key is over its budget.
func (l *Limiter) Allow(key string) bool { return l.bucket(key).Allow() }

// Exhausted reports whether key has no token left, without spending one:
// for budgets spent only on failures (Allow after a failed attempt).
func (l *Limiter) Exhausted(key string) bool { return l.bucket(key).Tokens() < 1 }
