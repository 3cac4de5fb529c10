package offline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go/jetstream"
)

// queue is a hand-written offline queue with reservation semantics.
type queue struct {
	records  []bitrix.OfflineEvent
	reserved map[string][]bitrix.OfflineEvent
	errored  []string
	next     int
}

func (q *queue) OfflineEvents(_ context.Context, o bitrix.OfflineQuery) (*bitrix.OfflineBatch, error) {
	if o.ProcessID != "" {
		return &bitrix.OfflineBatch{ProcessID: o.ProcessID, Events: q.reserved[o.ProcessID]}, nil
	}
	n := min(o.Limit, len(q.records))
	if n == 0 {
		return &bitrix.OfflineBatch{}, nil
	}
	q.next++
	pid := fmt.Sprintf("p%d", q.next)
	q.reserved[pid] = q.records[:n]
	q.records = q.records[n:]
	return &bitrix.OfflineBatch{ProcessID: pid, Events: q.reserved[pid]}, nil
}

func (q *queue) ClearOfflineEvents(_ context.Context, pid string, ids []bitrix.ID, _ []string) error {
	q.reserved[pid] = slices.DeleteFunc(q.reserved[pid], func(e bitrix.OfflineEvent) bool { return slices.Contains(ids, e.ID) })
	return nil
}

func (q *queue) ErrorOfflineEvents(_ context.Context, pid string, mids []string) error {
	q.errored = append(q.errored, mids...)
	q.reserved[pid] = slices.DeleteFunc(q.reserved[pid], func(e bitrix.OfflineEvent) bool { return slices.Contains(mids, e.MessageID) })
	return nil
}

type batches map[string]string

func (b batches) PendingBatch(_ context.Context, m string) (string, bool, error) {
	p, ok := b[m]
	return p, ok, nil
}
func (b batches) SetPendingBatch(_ context.Context, m, p string) error { b[m] = p; return nil }
func (b batches) ClearPendingBatch(_ context.Context, m, p string) error {
	if b[m] == p {
		delete(b, m)
	}
	return nil
}

type publisher struct {
	ids  []string
	fail bool
}

func (p *publisher) Publish(_ context.Context, m eventbus.Message) (*jetstream.PubAck, error) {
	if p.fail {
		return nil, errors.New("broker down")
	}
	p.ids = append(p.ids, m.MsgID)
	return &jetstream.PubAck{}, nil
}

func record(id int, name string) bitrix.OfflineEvent {
	return bitrix.OfflineEvent{ID: bitrix.ID(id), EventName: name, Timestamp: "2026-09-17T12:32:31+02:00",
		EventData: json.RawMessage(fmt.Sprintf(`{"FIELDS":{"ID":"%d"}}`, id)), MessageID: fmt.Sprintf("%032d", id)}
}

func TestDrainPublishesThenClears(t *testing.T) {
	q := &queue{reserved: map[string][]bitrix.OfflineEvent{}}
	for i := 1; i <= 5; i++ {
		q.records = append(q.records, record(i, "ONCRMDEALUPDATE"))
	}
	q.records = append(q.records, record(6, "BAD EVENT"))
	pub, b := &publisher{}, batches{}
	p := New(pub, b)
	p.Limit = 4
	portal := Portal{MemberID: "m1", Domain: "a.bitrix24.com"}

	// The broker is down: nothing is cleared and the batch stays pending.
	pub.fail = true
	if _, err := p.Drain(context.Background(), portal, q); err == nil {
		t.Fatal("drain succeeded with the broker down")
	}
	if len(q.reserved["p1"]) != 4 || b["m1"] != "p1" {
		t.Fatalf("batch not kept: reserved=%v pending=%v", q.reserved, b)
	}

	pub.fail = false
	st, err := p.Drain(context.Background(), portal, q)
	if err != nil {
		t.Fatal(err)
	}
	if st.Published != 5 || st.Errored != 1 || len(pub.ids) != 5 {
		t.Fatalf("stats = %+v ids = %d", st, len(pub.ids))
	}
	for pid, rs := range q.reserved {
		if len(rs) != 0 {
			t.Errorf("batch %s not cleared: %v", pid, rs)
		}
	}
	if len(b) != 0 || len(q.errored) != 1 {
		t.Errorf("pending = %v errored = %v", b, q.errored)
	}
}

func TestMessageID(t *testing.T) {
	a, b := record(1, "X"), record(2, "X")
	b.MessageID = a.MessageID // same coalescing key, different record
	if MessageID("m", a) == MessageID("m", b) {
		t.Fatal("two queued changes share a message id")
	}
	// The same record read again (another drain, another replica) keeps its id.
	if again := record(1, "X"); MessageID("m", a) != MessageID("m", again) {
		t.Fatal("message id not deterministic")
	}
	if MessageID("m", a) == MessageID("n", a) {
		t.Fatal("two portals' records share a message id")
	}
}
