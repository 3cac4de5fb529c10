package consumer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Tuning is the part of a Spec operators may change per deployment without
// touching the consumer definition's identity (durable name, stream,
// filters). Zero fields leave the Spec's value.
type Tuning struct {
	AckWait     time.Duration
	Backoff     []time.Duration
	MaxDeliver  int
	Concurrency int
	// MaxConcurrency is Spec.MaxConcurrency.
	MaxConcurrency int
	BatchWindow    time.Duration
	// ProbeInterval and ProbeMaxInterval bound the waits between runs of a
	// message whose dependency is down (Spec.ProbeInterval).
	ProbeInterval    time.Duration
	ProbeMaxInterval time.Duration
}

// TuningFromEnv reads prefix+"ACK_WAIT", "BACKOFF" (comma-separated
// durations, e.g. "1m,5m,15m"), "MAX_DELIVER", "CONCURRENCY",
// "MAX_CONCURRENCY", "BATCH_WINDOW", "PROBE_INTERVAL", "PROBE_MAX_INTERVAL",
// e.g. with prefix "B24HUB_DEALSYNC_". Unset variables stay
// zero. It fails on values that do not parse.
func TuningFromEnv(getenv func(string) string, prefix string) (Tuning, error) {
	var t Tuning
	var errs []error
	dur := func(name string, dst *time.Duration) {
		if v := getenv(prefix + name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s%s=%q: want a positive duration like 30s", prefix, name, v))
			}
			*dst = d
		}
	}
	num := func(name string, dst *int) {
		if v := getenv(prefix + name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s%s=%q: want a positive integer", prefix, name, v))
			}
			*dst = n
		}
	}
	dur("ACK_WAIT", &t.AckWait)
	dur("BATCH_WINDOW", &t.BatchWindow)
	dur("PROBE_INTERVAL", &t.ProbeInterval)
	dur("PROBE_MAX_INTERVAL", &t.ProbeMaxInterval)
	num("MAX_DELIVER", &t.MaxDeliver)
	num("CONCURRENCY", &t.Concurrency)
	num("MAX_CONCURRENCY", &t.MaxConcurrency)
	if v := getenv(prefix + "BACKOFF"); v != "" {
		for _, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("%sBACKOFF=%q: want durations like 1m,5m,15m", prefix, v))
				break
			}
			t.Backoff = append(t.Backoff, d)
		}
	}
	return t, errors.Join(errs...)
}

// Apply returns s with t's non-zero fields set.
func (t Tuning) Apply(s Spec) Spec {
	if t.AckWait > 0 {
		s.AckWait = t.AckWait
	}
	if len(t.Backoff) > 0 {
		s.Backoff = append([]time.Duration(nil), t.Backoff...)
	}
	if t.MaxDeliver > 0 {
		s.MaxDeliver = t.MaxDeliver
	}
	if t.Concurrency > 0 {
		s.Concurrency = t.Concurrency
	}
	if t.BatchWindow > 0 {
		s.BatchWindow = t.BatchWindow
	}
	if t.ProbeInterval > 0 {
		s.ProbeInterval = t.ProbeInterval
	}
	if t.ProbeMaxInterval > 0 {
		s.ProbeMaxInterval = t.ProbeMaxInterval
	}
	if t.MaxConcurrency > 0 {
		s.MaxConcurrency = t.MaxConcurrency
	}
	if s.MaxConcurrency > 0 && s.MaxConcurrency < s.Concurrency {
		// A fixed concurrency set above the definition's ceiling wins.
		s.MaxConcurrency = s.Concurrency
	}
	return s
}
