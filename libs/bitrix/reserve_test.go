package bitrix_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/fakeportal"
)

// countingLimiter grants at once and counts the grants.
type countingLimiter struct{ waits atomic.Int64 }

func (l *countingLimiter) Wait(context.Context, string, bitrix.Rate) error {
	l.waits.Add(1)
	return nil
}
func (l *countingLimiter) Saturated(context.Context, string, bitrix.Rate) error { return nil }

// TestReserveGrantsOneRequest: a reserved slot is used by the first
// request made with the returned context, and only by it.
func TestReserveGrantsOneRequest(t *testing.T) {
	p, err := fakeportal.New(fakeportal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	id := p.CreateDeal(map[string]string{"TITLE": "x"}, false)
	lim := &countingLimiter{}
	c := webhookClient(t, p, bitrix.Config{}, bitrix.WithLimiter(lim))
	ctx, err := c.Reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := lim.waits.Load(); n != 1 {
		t.Fatalf("Reserve waited %d times, want 1", n)
	}
	if _, err := c.GetDeal(ctx, bitrix.ID(id)); err != nil {
		t.Fatal(err)
	}
	if n := lim.waits.Load(); n != 1 {
		t.Fatalf("the reserved request waited again: %d waits, want 1", n)
	}
	if _, err := c.GetDeal(ctx, bitrix.ID(id)); err != nil {
		t.Fatal(err)
	}
	if n := lim.waits.Load(); n != 2 {
		t.Fatalf("a second request on the same context did not wait: %d waits, want 2", n)
	}
}
