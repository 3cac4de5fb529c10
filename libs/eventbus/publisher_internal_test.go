package eventbus

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestWithdraw covers both cases of a publish that stops waiting: still
// queued (removed, never sent) and already taken by the pump (waited for
// until it is in the connection's buffer).
func TestWithdraw(t *testing.T) {
	p := &Publisher{waiting: map[uint64]*publish{}}
	p.pumping = true // no pump runs: the queue is ours to inspect
	a := &publish{id: 1, msg: &nats.Msg{}, done: make(chan pubResult, 1)}
	b := &publish{id: 2, msg: &nats.Msg{}, done: make(chan pubResult, 1)}
	p.waiting[1], p.waiting[2] = a, b
	p.enqueue(a)
	p.enqueue(b)

	p.withdraw(a)
	if len(p.queue) != 1 || p.queue[0] != b {
		t.Fatalf("queue after withdrawing a queued publish: %v", p.queue)
	}
	if _, ok := p.waiting[1]; ok {
		t.Fatal("withdrawn publish still waits for a reply")
	}

	// b is taken by a pump that has not finished sending: withdraw waits.
	sent := make(chan struct{})
	p.pumpMu.Lock()
	p.queue, b.sent = nil, sent
	p.pumpMu.Unlock()
	returned := make(chan struct{})
	go func() { p.withdraw(b); close(returned) }()
	select {
	case <-returned:
		t.Fatal("withdraw returned while the pump still held the message")
	case <-time.After(50 * time.Millisecond):
	}
	close(sent)
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("withdraw did not return once the message was sent")
	}
}
