package budget_test

import (
	"errors"
	"testing"
	"time"

	"github.com/b24hub/b24hub/services/ingress/internal/budget"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// TestPeakAccepted: a 10,000-deal import within a minute (one event every
// 6 ms, 2 KiB each) is admitted in full by the default budget, at the
// simulated times (the limiter takes the time as an argument, so the test
// does not take a minute), and leaves the portal below the 50% alert.
func TestPeakAccepted(t *testing.T) {
	b := budget.New(budget.DefaultConfig())
	now := t0
	for i := range 10_000 {
		if err := b.Admit("peak", 2048, now); err != nil {
			t.Fatalf("event %d of the import refused: %v", i, err)
		}
		now = now.Add(6 * time.Millisecond)
	}
	u := b.Usage(now)
	if u.Events >= 0.5 || u.Bytes >= 0.5 {
		t.Errorf("a real peak spent %+v of the burst; the alert at 50%% would fire on it", u)
	}
}

// TestFloodContained: a portal sending far beyond its budget is refused
// once the burst is spent, recovers at the sustained rate, and does not
// touch another portal's budget.
func TestFloodContained(t *testing.T) {
	cfg := budget.Config{EventsPerSecond: 10, EventsBurst: 100, BytesPerSecond: 1 << 20, BytesBurst: 1 << 30}
	b := budget.New(cfg)
	admitted := 0
	for range 1000 {
		if b.Admit("flood", 100, t0) == nil {
			admitted++
		}
	}
	if admitted != 100 {
		t.Fatalf("flood admitted %d events at once, want the burst of 100", admitted)
	}
	if err := b.Admit("flood", 100, t0); !errors.Is(err, budget.ErrEvents) {
		t.Fatalf("over budget: %v, want ErrEvents", err)
	}
	if err := b.Admit("other", 100, t0); err != nil {
		t.Fatalf("another portal refused during the flood: %v", err)
	}
	if err := b.Admit("flood", 100, t0.Add(100*time.Millisecond)); err != nil {
		t.Fatalf("one event after 100 ms at 10/s refused: %v", err)
	}
	if u := b.Usage(t0); u.OverHalf != 1 || u.Events < 0.99 {
		t.Errorf("usage %+v, want one portal over half and the highest share ~1", u)
	}
}

// TestBytesBudget: big events exhaust the byte budget before the event
// count, and a refused event spends nothing of the event budget.
func TestBytesBudget(t *testing.T) {
	b := budget.New(budget.Config{EventsPerSecond: 1, EventsBurst: 10, BytesPerSecond: 1, BytesBurst: 1000})
	for i := range 4 {
		if err := b.Admit("big", 250, t0); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if err := b.Admit("big", 250, t0); !errors.Is(err, budget.ErrBytes) {
		t.Fatalf("fifth 250-byte event: %v, want ErrBytes", err)
	}
	for i := range 6 {
		if err := b.Admit("big", 0, t0); err != nil {
			t.Fatalf("empty event %d refused: the refused one spent an event token: %v", i, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  budget.Config
		ok   bool
	}{
		{"defaults", budget.DefaultConfig(), true},
		{"zero rate", budget.Config{EventsBurst: 1, BytesPerSecond: 1, BytesBurst: 1 << 20}, false},
		{"zero bytes burst", budget.Config{EventsPerSecond: 1, EventsBurst: 1, BytesPerSecond: 1}, false},
		{"bytes burst below body", budget.Config{EventsPerSecond: 1, EventsBurst: 1, BytesPerSecond: 1, BytesBurst: 1000}, false},
	} {
		if err := tc.cfg.Validate(256 << 10); (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v", tc.name, err)
		}
	}
}
