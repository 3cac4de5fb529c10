package consumer

import (
	"sync"
	"sync/atomic"
	"time"
)

// ElasticIdle is how long a handler call started past Spec.Concurrency
// waits for work before it ends.
const ElasticIdle = 30 * time.Second

// runElastic calls handle for every item of in with min workers always
// running and, while items wait and every worker is busy, more of them up
// to max (0: none); a worker above min ends after idle without work. It
// returns when in is closed and every call has returned.
func runElastic[B any](in <-chan B, min, max int, idle time.Duration, handle func(B)) {
	var wg sync.WaitGroup
	var busy, extra atomic.Int64
	work := make(chan B)
	worker := func(elastic bool) {
		defer func() {
			if elastic {
				extra.Add(-1)
			}
		}()
		var t *time.Timer
		var timeout <-chan time.Time
		if elastic {
			t = time.NewTimer(idle)
			defer t.Stop()
			timeout = t.C
		}
		for {
			select {
			case b, ok := <-work:
				if !ok {
					return
				}
				busy.Add(1)
				handle(b)
				busy.Add(-1)
				if elastic {
					t.Reset(idle)
				}
			case <-timeout:
				return
			}
		}
	}
	for range min {
		wg.Go(func() { worker(false) })
	}
	for b := range in {
		select {
		case work <- b:
			continue
		default:
		}
		// Every worker is busy (or between two items): add one if allowed,
		// then wait for whichever is free first.
		if n := int64(min) + extra.Load(); n < int64(max) && busy.Load() >= n {
			extra.Add(1)
			wg.Go(func() { worker(true) })
		}
		work <- b
	}
	close(work)
	wg.Wait()
}
