package fakeportal

import "time"

// queryLimitFault injects QUERY_LIMIT_EXCEEDED answers independently of the
// leaky bucket, as a portal shared with other applications answers when
// their requests filled the bucket. Guarded by Portal.mu.
type queryLimitFault struct {
	rate     float64
	injected int64
}

// SetQueryLimitRate makes a share rate ∈ [0, 1] of REST requests that the
// bucket admitted answer 503 QUERY_LIMIT_EXCEEDED anyway (the request still
// counts in the bucket, as it would when another application spent the
// slot). Such answers are counted in InjectedQueryLimits, not in
// Stats.QueryLimitExceeded, which keeps counting the requests the bucket
// itself rejected — the ones a client exceeding the limit causes.
func (p *Portal) SetQueryLimitRate(rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.qle.rate = min(max(rate, 0), 1)
}

// InjectedQueryLimits is how many QUERY_LIMIT_EXCEEDED answers
// SetQueryLimitRate caused.
func (p *Portal) InjectedQueryLimits() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.qle.injected
}

// injectQueryLimit rolls the dice for one admitted request. Caller holds p.mu.
func (p *Portal) injectQueryLimit(time.Time) bool {
	if p.qle.rate <= 0 || p.rng.Float64() >= p.qle.rate {
		return false
	}
	p.qle.injected++
	return true
}
