package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
)

func TestWaitSettled(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		ts      []time.Time
		settle  time.Duration
		waits   bool
		maxWait time.Duration
	}{
		{"no ts", nil, 10 * time.Second, false, 0},
		{"old event", []time.Time{now.Add(-time.Minute)}, 10 * time.Second, false, 0},
		{"fresh event waits", []time.Time{now}, 50 * time.Millisecond, true, 50 * time.Millisecond},
		{"future ts capped at settle", []time.Time{now.Add(time.Hour)}, 50 * time.Millisecond, true, 50 * time.Millisecond},
		{"newest counts", []time.Time{now.Add(-time.Minute), now}, 50 * time.Millisecond, true, 50 * time.Millisecond},
		{"disabled", []time.Time{now}, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An ended context tells whether it waits, however slow the
			// machine: a wait ends at once with the context's error, no
			// wait returns nil.
			ended, end := context.WithCancel(context.Background())
			end()
			if err := consumer.WaitSettled(ended, now, tt.settle, tt.ts...); (err != nil) != tt.waits {
				t.Fatalf("with an ended context: %v, want a wait: %v", err, tt.waits)
			}
			if !tt.waits {
				return
			}
			start := time.Now()
			if err := consumer.WaitSettled(context.Background(), now, tt.settle, tt.ts...); err != nil {
				t.Fatal(err)
			}
			// A timer never fires early: the wait lasts at least its length.
			if waited := time.Since(start); waited < tt.maxWait/2 {
				t.Errorf("waited %s, want about %s", waited, tt.maxWait)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := consumer.WaitSettled(ctx, time.Now(), time.Hour, time.Now()); err == nil {
		t.Error("cancelled wait returned nil")
	}
}
