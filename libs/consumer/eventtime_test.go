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
			start := time.Now()
			if err := consumer.WaitSettled(context.Background(), now, tt.settle, tt.ts...); err != nil {
				t.Fatal(err)
			}
			waited := time.Since(start)
			if tt.waits && waited < tt.maxWait/2 {
				t.Errorf("waited %s, want about %s", waited, tt.maxWait)
			}
			// A wrong wait here would last about 10s; any load stays far below.
			if !tt.waits && waited > 5*time.Second {
				t.Errorf("waited %s, want no wait", waited)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := consumer.WaitSettled(ctx, time.Now(), time.Hour, time.Now()); err == nil {
		t.Error("cancelled wait returned nil")
	}
}
