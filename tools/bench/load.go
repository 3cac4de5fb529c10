package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result summarises one load step.
type result struct {
	Requests   int
	Errors     int
	Throughput float64 // successful requests per second
	P50, P99   time.Duration
	// CPU is the whole process's CPU time (user+system) per request during
	// the step: load generator, server and broker together. On a shared
	// machine it moves less than throughput, which also depends on how
	// much CPU the neighbours leave.
	CPU time.Duration
	// Alloc is the bytes the whole process allocated per request, and GCs
	// the garbage collections during the step: unlike CPU time they do not
	// depend on the neighbours, and at a steady rate the collections are
	// what most of the latency tail comes from.
	Alloc float64
	GCs   uint32
}

func (r result) String() string {
	return fmt.Sprintf("%8.0f req/s  p50 %7s  p99 %7s  cpu %5.1f µs/req  alloc %4.1f KiB/req  %d GCs  (%d ok, %d errors)", r.Throughput,
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), float64(r.CPU)/1e3, r.Alloc/1024, r.GCs,
		r.Requests-r.Errors, r.Errors)
}

// usage is what the process has used so far.
type usage struct {
	cpu   time.Duration // user + system
	alloc uint64        // bytes allocated
	gcs   uint32        // completed collections
}

func processUsage() usage {
	var u usage
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u.alloc, u.gcs = ms.TotalAlloc, ms.NumGC
	return u
}

// bodyFunc returns the i-th request body; bodies differ so no request is a
// JetStream duplicate.
type bodyFunc func(i int64) []byte

func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute,
	}, Timeout: 10 * time.Second}
}

func post(c *http.Client, url string, body []byte) (time.Duration, bool) {
	start := time.Now()
	resp, err := c.Post(url, "application/x-www-form-urlencoded", bytes.NewReader(body))
	if err != nil {
		return time.Since(start), false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start), resp.StatusCode == http.StatusOK
}

// closedLoop keeps conns requests in flight for d.
func closedLoop(ctx context.Context, url string, conns int, d time.Duration, body bodyFunc, seq *atomic.Int64) result {
	c := newClient(conns)
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lats []time.Duration
	errs := 0
	var wg sync.WaitGroup
	start, used := time.Now(), processUsage()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			e := 0
			for ctx.Err() == nil {
				lat, ok := post(c, url, body(seq.Add(1)))
				if ok {
					local = append(local, lat)
				} else {
					e++
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarise(lats, errs, time.Since(start), used)
}

// openLoop offers rate requests per second for d, whatever the latency.
func openLoop(ctx context.Context, url string, rate int, d time.Duration, body bodyFunc, seq *atomic.Int64) result {
	c := newClient(256)
	defer c.CloseIdleConnections()
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	var mu sync.Mutex
	lats := make([]time.Duration, 0, total)
	errs := 0
	var wg sync.WaitGroup
	start, used := time.Now(), processUsage()
	for i := range total {
		if ctx.Err() != nil {
			break
		}
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, ok := post(c, url, body(seq.Add(1)))
			mu.Lock()
			if ok {
				lats = append(lats, lat)
			} else {
				errs++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarise(lats, errs, time.Since(start), used)
}

// summarise makes the result of a step that started with used.
func summarise(lats []time.Duration, errs int, elapsed time.Duration, used usage) result {
	now := processUsage()
	slices.Sort(lats)
	r := result{Requests: len(lats) + errs, Errors: errs, Throughput: float64(len(lats)) / elapsed.Seconds(), GCs: now.gcs - used.gcs}
	if r.Requests > 0 {
		r.CPU = (now.cpu - used.cpu) / time.Duration(r.Requests)
		r.Alloc = float64(now.alloc-used.alloc) / float64(r.Requests)
	}
	if len(lats) > 0 {
		r.P50 = lats[len(lats)*50/100]
		r.P99 = lats[min(len(lats)-1, len(lats)*99/100)]
	}
	return r
}
