package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// load offers rate requests per second from up to workers goroutines until
// ctx ends or max requests were sent (bounded in count and time). A tick
// that finds every worker busy is skipped, not queued, so an outage does
// not build an unbounded backlog in the test itself.
type load struct {
	mu      sync.Mutex
	results []postResult
	done    chan struct{}
}

func (s *testStack) startLoad(ctx context.Context, rate, workers, max int, send func(i int) postResult) *load {
	l := &load{done: make(chan struct{})}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				r := send(i)
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
			}
		})
	}
	go func() {
		defer close(l.done)
		defer wg.Wait()
		defer close(jobs)
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		for i := 0; i < max; {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			select {
			case jobs <- i:
				i++
			default: // every worker busy
			}
		}
	}()
	return l
}

// wait returns every result once the load stopped.
func (l *load) wait() []postResult {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]postResult(nil), l.results...)
}

// randomDealUpdate posts an ONCRMDEALUPDATE about a random demo deal.
func (s *testStack) randomDealUpdate(int) postResult {
	id := 1 + rand.IntN(demoDeals)
	r := s.post(s.dealUpdate(id))
	return r
}

// accepted returns the ids of the 200 answers.
func accepted(rs []postResult) []string {
	var ids []string
	for _, r := range rs {
		if r.status == http.StatusOK && r.id != "" {
			ids = append(ids, r.id)
		}
	}
	return ids
}
