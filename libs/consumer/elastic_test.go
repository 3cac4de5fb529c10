package consumer

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/testwait"
)

// TestElasticGrowsToMaxAndBack: while every worker is blocked, workers are
// added up to max and never beyond; once the work is done the extra ones
// end after their idle time and the minimum keeps working.
func TestElasticGrowsToMaxAndBack(t *testing.T) {
	const min, max = 2, 5
	in := make(chan int)
	release := make(chan struct{})
	var running, peak, handled atomic.Int64
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		runElastic(in, min, max, 10*time.Millisecond, func(int) {
			n := running.Add(1)
			mu.Lock()
			if n > peak.Load() {
				peak.Store(n)
			}
			mu.Unlock()
			<-release
			running.Add(-1)
			handled.Add(1)
		})
		close(done)
	}()
	go func() {
		for i := range 3 * max {
			in <- i
		}
	}()
	waitFor(t, "max workers busy", func() bool { return running.Load() == max })
	close(release)
	waitFor(t, "every item handled", func() bool { return handled.Load() == 3*max })
	if p := peak.Load(); p != max {
		t.Fatalf("peak %d handler calls at once, want %d", p, max)
	}
	close(in)
	<-done
}

// TestElasticFixedWithoutMax: max 0 keeps exactly min workers.
func TestElasticFixedWithoutMax(t *testing.T) {
	in := make(chan int)
	release := make(chan struct{})
	var running, peak atomic.Int64
	done := make(chan struct{})
	go func() {
		runElastic(in, 2, 0, time.Millisecond, func(int) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			running.Add(-1)
		})
		close(done)
	}()
	go func() {
		for i := range 6 {
			in <- i
		}
		close(in)
	}()
	waitFor(t, "two workers busy", func() bool { return running.Load() == 2 })
	close(release)
	<-done
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak %d, want 2", p)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}
