package delivery

import (
	"sync"
	"time"
)

// State is where a destination's circuit breaker stands.
type State string

// The breaker's states.
const (
	// StateDelivering: the circuit is closed, messages flow.
	StateDelivering State = "delivering"
	// StatePaused: the endpoint failed PauseAfter times in a row; the
	// durable consumer is paused on the server, so its backlog waits in
	// JetStream and no message's retry schedule runs out meanwhile.
	StatePaused State = "paused"
	// StateProbing: the pause ended and deliveries are tried again; one
	// more failure pauses again, one success closes the circuit.
	StateProbing State = "probing"
)

// breaker counts failed attempts in a row across a destination's workers.
// A success anywhere resets the count, so one poisoned entity among
// healthy ones never pauses a destination; an endpoint that is down does.
type breaker struct {
	threshold int
	probe     time.Duration

	mu       sync.Mutex
	failures int
	state    State
	until    time.Time
	opens    int
	onChange func(State)
}

func newBreaker(threshold int, probe time.Duration, onChange func(State)) *breaker {
	return &breaker{threshold: threshold, probe: probe, state: StateDelivering, onChange: onChange}
}

// failure records a failed attempt. It reports true, and the pause's end,
// when this failure opens the circuit; the caller pauses the consumer.
func (b *breaker) failure(now time.Time) (open bool, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == StatePaused {
		return false, b.until // already open: another worker tripped it
	}
	b.failures++
	if b.failures < b.threshold {
		return false, time.Time{}
	}
	b.state, b.until = StatePaused, now.Add(b.probe)
	b.opens++
	b.notify()
	return true, b.until
}

// success closes the circuit.
func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = 0
	if b.state != StateDelivering {
		b.state = StateDelivering
		b.notify()
	}
}

// probing moves a paused breaker to half-open: the next failure reopens.
func (b *breaker) probing() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == StatePaused {
		b.state, b.failures = StateProbing, b.threshold-1
		b.notify()
	}
}

// resume sets the breaker to paused until t (a pause found on the server
// at start, set by this replica before a restart or by another one).
func (b *breaker) resume(until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state, b.until = StatePaused, until
	b.notify()
}

func (b *breaker) notify() {
	if b.onChange != nil {
		b.onChange(b.state)
	}
}

// Status is a destination's breaker as b24ctl and the monitor show it.
type Status struct {
	State State `json:"state"`
	// Failures are failed attempts in a row (reset by any success).
	Failures int `json:"failures"`
	// PausedUntil is when the current pause ends (paused only).
	PausedUntil time.Time `json:"paused_until,omitzero"`
	// Pauses counts how often the circuit opened since the service started.
	Pauses int `json:"pauses"`
}

func (b *breaker) status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{State: b.state, Failures: b.failures, Pauses: b.opens}
	if b.state == StatePaused {
		s.PausedUntil = b.until
	}
	return s
}
