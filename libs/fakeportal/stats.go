package fakeportal

// Stats are counters of what the portal saw, for assertions.
type Stats struct {
	// Requests counts REST requests received, including rejected ones.
	Requests int64
	// QueryLimitExceeded counts 503 QUERY_LIMIT_EXCEEDED answers.
	QueryLimitExceeded int64
	// MaxLevel is the highest leaky-bucket level observed (≤ Burst by
	// construction; a limiter that respects the portal keeps it below).
	MaxLevel float64
	// OperationLimitExceeded counts 429 OPERATION_TIME_LIMIT answers,
	// batch sub-commands included.
	OperationLimitExceeded int64
	// Refreshes counts successful refresh_token exchanges.
	Refreshes int64
	// InjectedFaults counts 5xx and HTML answers from Faults.
	InjectedFaults int64
	// Batches and BatchCommands count batch requests and their commands.
	Batches, BatchCommands int64
	// EventsFired counts pushes generated (sent or dropped).
	EventsFired int64
	// PushesSent, PushesFailed and PushesDropped split them by outcome.
	PushesSent, PushesFailed, PushesDropped int64
	// OfflineQueued counts new offline records, OfflineCoalesced changes
	// merged into an existing record.
	OfflineQueued, OfflineCoalesced int64
}

// Stats returns a snapshot of the counters.
func (p *Portal) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// MethodCalls returns how many times method ran (batch commands included).
func (p *Portal) MethodCalls(method string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.methods[method]
}

// ResetStats zeroes the counters and the observed bucket maximum; the
// bucket level itself is kept.
func (p *Portal) ResetStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = Stats{}
	p.bucket.max = p.bucket.level
	p.methods = map[string]int64{}
}
