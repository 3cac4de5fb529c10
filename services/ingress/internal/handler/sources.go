package handler

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// sourceLimiter bounds how often one source address may ask for the
// verification of an install from a portal that is not known yet. Anyone
// can POST a forged ONAPPINSTALL, and each one costs the subscriptions
// service a verification call; real installs are rare (one per portal and
// application), so a small burst per address is plenty. The addresses are
// kept in an LRU of bounded size, so a flood from many addresses cannot
// grow the ingress's memory either.
type sourceLimiter struct {
	every time.Duration
	burst int
	mu    sync.Mutex
	seen  *simplelru.LRU[string, *rate.Limiter]
}

// Install-verification budget per source address: a burst of 5, then one
// every 10 seconds; at most 10,000 addresses remembered.
const (
	installBurst   = 5
	installEvery   = 10 * time.Second
	installSources = 10_000
)

func newSourceLimiter(every time.Duration, burst, size int) *sourceLimiter {
	seen, _ := simplelru.NewLRU[string, *rate.Limiter](size, nil) // size > 0: never fails
	return &sourceLimiter{every: every, burst: burst, seen: seen}
}

// allow spends one of source's verifications; false means over budget.
func (l *sourceLimiter) allow(source string) bool {
	l.mu.Lock()
	lim, ok := l.seen.Get(source)
	if !ok {
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.seen.Add(source, lim)
	}
	l.mu.Unlock()
	return lim.Allow()
}
