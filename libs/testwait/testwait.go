// Package testwait is how tests wait for asynchronous work: they poll a
// condition until it holds, and a deadline only bounds how long a failing
// test takes to say so. A passing test returns as soon as its condition
// holds, so the deadline costs nothing and can be generous: a full run on a
// loaded machine (other builds beside it, two cores) is many times slower
// than a quiet one.
//
// A test that asserts that something did not happen waits for a positive
// sign that it would have happened by then (a later event processed, a
// counter moved) with For, and only then checks.
package testwait

import (
	"fmt"
	"testing"
	"time"
)

// Patience is the least a wait lasts before it fails.
const Patience = 2 * time.Minute

// The pause between tries starts at firstPoll and doubles up to maxPoll: a
// condition that holds soon is seen soon, and one that queries a broker or
// a database is not asked a hundred times a second for minutes.
const (
	firstPoll = 5 * time.Millisecond
	maxPoll   = 100 * time.Millisecond
)

// For polls cond until it holds and fails t (Fatalf, so call it from the
// test's goroutine) with what when it has not held within Patience.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Patience, what, cond)
}

// Within is For with a longer bound: d when it exceeds Patience, for
// conditions that normally take minutes.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Until(time.Now().Add(max(d, Patience)), cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// Until polls cond until it holds or deadline passes; then it returns an
// error. For a helper that reports a failure its own way.
func Until(deadline time.Time, cond func() bool) error {
	start, pause := time.Now(), firstPoll
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPoll)
	}
	return nil
}
