package dealevents

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
)

// TestReadyAtKeepsTheSustainedRate: a portal whose limiter has slots left
// is still ready only one slot interval (1/PerSecond) after its last
// batch's slot, so small batches do not spend the burst — unless a backlog
// waits; when the limiter's next slot is later, that is the answer; a
// portal never seen is ready now.
func TestReadyAtKeepsTheSustainedRate(t *testing.T) {
	lim := bitrix.NewLocalLimiter(0, nil)
	rate := bitrix.Rate{PerSecond: 2, Burst: 4} // capacity 2 after the margin
	c, err := bitrix.New(bitrix.Config{WebhookURL: "https://portal.example/rest/1/code/", MemberID: "m1", Rate: rate},
		bitrix.WithLimiter(lim))
	if err != nil {
		t.Fatal(err)
	}
	h := New(nil, nil, nil, Options{}, nil)
	if got := h.ReadyAt("m1", false); !got.IsZero() {
		t.Fatalf("a portal never seen: %v, want the zero time", got)
	}
	p := h.paceOf("m1", c)
	if h.paceOf("m1", c) != p {
		t.Fatal("the same client got a second pace")
	}
	if got := h.ReadyAt("m1", false); !got.IsZero() {
		t.Fatalf("no batch took a slot yet: %v, want the zero time", got)
	}
	if err := lim.Wait(context.Background(), "m1", rate); err != nil { // the batch's slot
		t.Fatal(err)
	}
	granted := time.Now().Add(-300 * time.Millisecond) // the batch took its slot 300 ms ago
	p.granted.Store(granted.UnixNano())
	if got, want := h.ReadyAt("m1", false), granted.Add(500*time.Millisecond); !got.Equal(want) {
		t.Fatalf("one slot left in the bucket: ready at %v, want the sustained rate's %v", got, want)
	}
	if got := h.ReadyAt("m1", true); !got.IsZero() {
		t.Fatalf("one slot left, under a backlog: ready at %v, want now (the burst is for backlogs)", got)
	}
	if err := lim.Wait(context.Background(), "m1", rate); err != nil { // someone else takes the last free slot
		t.Fatal(err)
	}
	// The bucket is full now: its next slot is about 500 ms from now,
	// later than the sustained rate's 200 ms.
	got, next := h.ReadyAt("m1", false), c.NextSlot()
	if steady := granted.Add(500 * time.Millisecond); !got.After(steady) || next.Sub(got).Abs() > 10*time.Millisecond {
		t.Fatalf("full bucket: ready at %v, want the limiter's next slot %v (after %v)", got, next, steady)
	}
}
