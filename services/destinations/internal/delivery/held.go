package delivery

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// held is every message a session has received and not yet settled:
// queued, being delivered or gathered. They are all marked in progress
// together, so a message waiting behind a retried one of its entity never
// runs out of ack wait and comes back out of order, and whatever is left
// at the end goes back in stream order.
type held struct {
	mu   sync.Mutex
	msgs map[uint64]jetstream.Msg
}

func newHeld() *held { return &held{msgs: map[uint64]jetstream.Msg{}} }

// add keeps m; a redelivery of a message already held replaces it.
func (h *held) add(m jetstream.Msg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs[seq(m)] = m
}

func (h *held) remove(m jetstream.Msg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msgs[seq(m)] == m {
		delete(h.msgs, seq(m))
	}
}

func (h *held) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// sorted returns the held messages in stream order.
func (h *held) sorted() []jetstream.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]jetstream.Msg, 0, len(h.msgs))
	for _, m := range h.msgs {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b jetstream.Msg) int {
		sa, sb := seq(a), seq(b)
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	return out
}

// keepInProgress extends the ack wait of every held message each interval
// until ctx ends.
func (h *held) keepInProgress(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, m := range h.sorted() {
				_ = m.InProgress()
			}
		}
	}
}
