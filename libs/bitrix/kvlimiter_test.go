package bitrix_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/natstest"
)

// storm runs goroutinesPer goroutines on each client, callsPer calls each,
// and returns the errors.
func storm(ctx context.Context, clients []*bitrix.Client, goroutinesPer, callsPer int, id bitrix.ID) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range clients {
		for range goroutinesPer {
			wg.Go(func() {
				for range callsPer {
					if _, err := c.GetDeal(ctx, id); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	return errs
}

// A scaled portal (10 req/s, burst 20) keeps the test to a few seconds;
// the limiter's arithmetic does not depend on the scale.
var scaled = bitrix.Rate{PerSecond: 10, Burst: 20}

func TestReplicasShareLimiterThroughNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 5s")
	}
	ctx := context.Background()
	srv := natstest.Start(t)
	p := newFake(t, fakeportal.Config{Rate: scaled.PerSecond, Burst: scaled.Burst})
	id := bitrix.ID(p.CreateDeal(nil, false))

	var clients []*bitrix.Client
	for range 3 {
		// One connection, KV handle and limiter per replica.
		_, js := srv.JetStream(t)
		kv := platformBucket(t, js, eventbus.BucketRateLimit, "")
		// Margin 3 at 10 req/s leaves 150ms for the lease plus the trip to
		// the portal, ample on loopback even on a loaded machine.
		lim, err := bitrix.NewKVLimiter(kv, bitrix.KVLimiterConfig{Margin: 3})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, webhookClient(t, p, bitrix.Config{Rate: scaled}, bitrix.WithLimiter(lim)))
	}
	start := time.Now()
	errs := storm(ctx, clients, 4, 5, id) // 60 calls
	if len(errs) > 0 {
		t.Fatalf("%d calls failed, first: %v", len(errs), errs[0])
	}
	s := p.Stats()
	t.Logf("60 calls in %v; portal: %d requests, max level %.2f, %d QUERY_LIMIT_EXCEEDED", time.Since(start).Round(time.Millisecond), s.Requests, s.MaxLevel, s.QueryLimitExceeded)
	if s.QueryLimitExceeded != 0 || s.MaxLevel > float64(scaled.Burst) || s.Requests != 60 {
		t.Fatalf("portal saw %+v", s)
	}
}

// TestPrivateLimitersOverflowThePortal is the control for the test above:
// the same replicas with a limiter each do overflow the shared bucket.
func TestPrivateLimitersOverflowThePortal(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{Rate: scaled.PerSecond, Burst: scaled.Burst})
	id := bitrix.ID(p.CreateDeal(nil, false))
	var clients []*bitrix.Client
	for range 3 {
		clients = append(clients, webhookClient(t, p, bitrix.Config{Rate: scaled},
			bitrix.WithLimiter(bitrix.NewLocalLimiter(3, nil))))
	}
	if errs := storm(ctx, clients, 4, 2, id); len(errs) > 0 {
		t.Fatalf("QUERY_LIMIT_EXCEEDED should be retried away: %v", errs[0])
	}
	if s := p.Stats(); s.QueryLimitExceeded == 0 {
		t.Fatalf("private limiters did not overflow the portal: %+v", s)
	}
}

func TestKVLimiterSaturatedMakesEveryoneWait(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	kv := platformBucket(t, js, eventbus.BucketRateLimit, "sat")
	clock := bitrix.NewVirtualClock()
	a, _ := bitrix.NewKVLimiter(kv, bitrix.KVLimiterConfig{Clock: clock})
	b, _ := bitrix.NewKVLimiter(kv, bitrix.KVLimiterConfig{Clock: clock})
	r := bitrix.Rate{PerSecond: 2, Burst: 10}
	// Fill a's view first so it has a cached revision.
	if err := a.Wait(ctx, "m1", r); err != nil {
		t.Fatal(err)
	}
	if err := b.Saturated(ctx, "m1", r); err != nil {
		t.Fatal(err)
	}
	start := clock.Now()
	if err := a.Wait(ctx, "m1", r); err != nil {
		t.Fatal(err)
	}
	// Full at capacity 8 (10 - margin 2): the next slot frees in 0.5s.
	if waited := clock.Now().Sub(start); waited < 500*time.Millisecond {
		t.Fatalf("a did not wait after b saw QUERY_LIMIT_EXCEEDED: %v", waited)
	}
}

func TestKVLimiterGrantsExactlyCapacityAtOnce(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	clock := bitrix.NewVirtualClock()
	r := bitrix.Rate{PerSecond: 2, Burst: 50}
	var lims []*bitrix.KVLimiter
	for range 3 {
		_, js := srv.JetStream(t)
		kv := platformBucket(t, js, eventbus.BucketRateLimit, "cap")
		l, _ := bitrix.NewKVLimiter(kv, bitrix.KVLimiterConfig{Clock: clock})
		lims = append(lims, l)
	}
	// Interleave three replicas without letting time pass: exactly 48 slots
	// (burst 50 minus the margin of 2) are granted before anyone must wait.
	granted := 0
	for i := 0; ; i++ {
		before := clock.Now()
		if err := lims[i%3].Wait(ctx, "m", r); err != nil {
			t.Fatal(err)
		}
		if clock.Now().After(before) {
			break
		}
		granted++
	}
	if granted != 48 {
		t.Fatalf("granted %d slots at t=0, want 48", granted)
	}
}

// TestNextSlotIsWhenWaitGrants: both limiters tell, without waiting, when
// the portal's next slot comes, and Wait then grants it at that moment;
// before any grant, and after a saturation the KV limiter has not yet
// read, the answer is the zero time (go ahead, Wait knows better).
func TestNextSlotIsWhenWaitGrants(t *testing.T) {
	ctx := context.Background()
	r := bitrix.Rate{PerSecond: 2, Burst: 4} // capacity 2 after the margin
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	type estimating interface {
		bitrix.Limiter
		bitrix.SlotEstimator
	}
	for _, tc := range []struct {
		name string
		new  func(bitrix.Clock) estimating
	}{
		{"local", func(c bitrix.Clock) estimating { return bitrix.NewLocalLimiter(0, c) }},
		{"kv", func(c bitrix.Clock) estimating {
			l, err := bitrix.NewKVLimiter(platformBucket(t, js, eventbus.BucketRateLimit, "next"), bitrix.KVLimiterConfig{Clock: c})
			if err != nil {
				t.Fatal(err)
			}
			return l
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := bitrix.NewVirtualClock()
			l := tc.new(clock)
			if got := l.NextSlot("m1", r); !got.IsZero() {
				t.Fatalf("before any grant: %v, want the zero time", got)
			}
			for i := range 2 { // the bucket's capacity, at once
				if err := l.Wait(ctx, "m1", r); err != nil {
					t.Fatal(err)
				}
				if i == 0 && !l.NextSlot("m1", r).IsZero() {
					t.Fatal("a slot is left, yet NextSlot is not now")
				}
			}
			next := l.NextSlot("m1", r)
			if want := clock.Now().Add(500 * time.Millisecond); !next.Equal(want) {
				t.Fatalf("next slot %v, want %v (full at 2 req/s)", next, want)
			}
			if err := l.Wait(ctx, "m1", r); err != nil {
				t.Fatal(err)
			}
			if !clock.Now().Equal(next) {
				t.Fatalf("Wait granted at %v, NextSlot said %v", clock.Now(), next)
			}
			if got := l.NextSlot("m2", r); !got.IsZero() {
				t.Fatalf("another portal: %v, want the zero time", got)
			}
			if err := l.Saturated(ctx, "m1", r); err != nil {
				t.Fatal(err)
			}
			if kv, ok := l.(*bitrix.KVLimiter); ok && !kv.NextSlot("m1", r).IsZero() {
				t.Fatal("after Saturated the KV limiter's cached state is stale, yet NextSlot answered from it")
			}
		})
	}
}
