package bitrix_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/fakeportal"
)

// stormResult is what one storm fetch cost.
type stormResult struct {
	events    int           // pushes the handler received
	deals     int           // deals fetched
	requests  int64         // REST requests the portal received
	qle       int64         // QUERY_LIMIT_EXCEEDED answers
	maxLevel  float64       // highest bucket level the portal saw
	simulated time.Duration // virtual time the fetch took (limiter waits)
	wall      time.Duration // real time the fetch took
}

// stormPortal sets up the scenario of the performance requirement: a portal
// with the default limit (2 req/s, burst 50) on a virtual clock shared with
// the client, 1,000 deals bulk-edited, and the resulting ONCRMDEALUPDATE
// pushes collected by a handler that coalesces them by deal ID (§9.2).
func stormPortal(tb testing.TB, n int) (*fakeportal.Portal, *bitrix.Client, *bitrix.VirtualClock, []bitrix.ID, int) {
	tb.Helper()
	clock := bitrix.NewVirtualClock()
	p := newFake(tb, fakeportal.Config{Rate: 2, Burst: 50, Clock: clock})
	var (
		mu     sync.Mutex
		seen   = map[string]bool{}
		ids    []bitrix.ID
		events int
	)
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body, err := b24event.Decode(r.Header.Get("Content-Type"), b, b24event.Limits{})
		if err != nil {
			tb.Errorf("push: %v", err)
			return
		}
		ev, err := body.Event()
		if err != nil {
			tb.Errorf("push: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		events++
		if !seen[ev.EntityID] {
			seen[ev.EntityID] = true
			id, _ := bitrix.ParseID(ev.EntityID)
			ids = append(ids, id)
		}
	}))
	tb.Cleanup(h.Close)
	p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: h.URL + "/b24", Events: []string{"ONCRMDEALUPDATE"}})
	p.BulkEditDeals(n, map[string]string{"STAGE_ID": "WON"})
	drain(tb, p)
	c := webhookClient(tb, p, bitrix.Config{}, bitrix.WithClock(clock))
	p.ResetStats()
	mu.Lock()
	defer mu.Unlock()
	return p, c, clock, ids, events
}

// fetchStorm fetches the stormed deals, batched (GetDeals) or naively (one
// crm.deal.get each).
func fetchStorm(tb testing.TB, batched bool, n int, timer func(on bool)) stormResult {
	ctx := context.Background()
	timer(false)
	p, c, clock, ids, events := stormPortal(tb, n)
	timer(true)
	simStart, wallStart := clock.Now(), time.Now()
	fetched := 0
	if batched {
		deals, errs, err := c.GetDeals(ctx, ids)
		if err != nil || len(errs) > 0 {
			tb.Fatalf("GetDeals: %v %v", err, errs)
		}
		fetched = len(deals)
	} else {
		for _, id := range ids {
			if _, err := c.GetDeal(ctx, id); err != nil {
				tb.Fatalf("GetDeal(%d): %v", id, err)
			}
			fetched++
		}
	}
	wall, sim := time.Since(wallStart), clock.Now().Sub(simStart)
	s := p.Stats() // cheap; the timer stays on because b.Loop wants it running
	return stormResult{events: events, deals: fetched, requests: s.Requests, qle: s.QueryLimitExceeded,
		maxLevel: s.MaxLevel, simulated: sim, wall: wall}
}

func TestStormFetchBudget(t *testing.T) {
	noTimer := func(bool) {}
	batched := fetchStorm(t, true, 1000, noTimer)
	t.Logf("batched: %+v", batched)
	if batched.events != 1000 || batched.deals != 1000 {
		t.Fatalf("storm: %d events, %d deals", batched.events, batched.deals)
	}
	if batched.requests > 25 || batched.qle != 0 || batched.simulated != 0 {
		t.Fatalf("batched fetch: %d requests, %d QUERY_LIMIT_EXCEEDED, %v simulated", batched.requests, batched.qle, batched.simulated)
	}
	if testing.Short() {
		return
	}
	naive := fetchStorm(t, false, 1000, noTimer)
	t.Logf("naive: %+v", naive)
	// Virtual time, not wall time: 48 slots at once, then 2 per second.
	if naive.requests != 1000 || naive.qle != 0 || naive.simulated < 7*time.Minute {
		t.Fatalf("naive fetch: %d requests, %d QUERY_LIMIT_EXCEEDED, %v simulated", naive.requests, naive.qle, naive.simulated)
	}
}

// BenchmarkStormFetch measures fetching the deals of a 1,000-deal bulk edit
// under the default limit (2 req/s, burst 50), on a virtual clock so the
// naive case does not take eight real minutes. ns/op is the real time of the
// fetch alone; requests/op, qle/op and sim-s/op are what the portal saw and
// how long the fetch would take against a real portal (limiter waits;
// network time not included).
//
//	go test -run '^$' -bench BenchmarkStormFetch -benchtime 3x ./libs/bitrix
func BenchmarkStormFetch(b *testing.B) {
	for _, mode := range []struct {
		name    string
		batched bool
	}{{"batched", true}, {"naive", false}} {
		b.Run(mode.name, func(b *testing.B) {
			var last stormResult
			timer := func(on bool) {
				if on {
					b.StartTimer()
				} else {
					b.StopTimer()
				}
			}
			for b.Loop() {
				last = fetchStorm(b, mode.batched, 1000, timer)
			}
			b.ReportMetric(float64(last.requests), "requests/op")
			b.ReportMetric(float64(last.qle), "qle/op")
			b.ReportMetric(last.simulated.Seconds(), "sim-s/op")
			b.ReportMetric(last.maxLevel, "max-level")
		})
	}
}
