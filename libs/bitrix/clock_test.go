package bitrix

import (
	"context"
	"sync"
	"time"
)

// VirtualClock is a Clock whose Sleep advances time instantly. It is exact
// for one goroutine at a time (tests and the storm benchmark drive it
// sequentially); concurrent sleepers would each advance it.
type VirtualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewVirtualClock starts at a fixed instant.
func NewVirtualClock() *VirtualClock {
	return &VirtualClock{now: time.Date(2026, 9, 17, 12, 0, 0, 0, time.UTC)}
}

// Now returns the virtual time.
func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep advances the virtual time by d.
func (c *VirtualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

// Advance moves the virtual time forward.
func (c *VirtualClock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
