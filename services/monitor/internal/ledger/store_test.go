package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/b24hub/b24hub/services/monitor/internal/schema"
	"github.com/jackc/pgx/v5/pgxpool"
)

func newStore(t *testing.T) (*ledger.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	for range 2 { // migrating twice is a no-op
		if err := schema.Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	s := ledger.NewStore(pool)
	if _, err := s.MaintainPartitions(ctx, time.Now(), 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	return s, pool
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func event(id string, at time.Time) ledger.Event {
	return ledger.Event{ID: id, Portal: "m1", Domain: "a.bitrix24.ru", EventType: "ONCRMDEALUPDATE", EntityID: "42",
		Source: "push", ReceivedAt: at, TraceID: "0af7651916cd43dd8448eb211c80319c", Payload: []byte("data[FIELDS][ID]=42")}
}

func TestWriteEventsIdempotent(t *testing.T) {
	s, pool := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	batch := []ledger.Event{event("e1", now), event("e2", now.Add(time.Second)), event("e1", now)}
	n, err := s.WriteEvents(ctx, batch)
	if err != nil || n != 2 {
		t.Fatalf("first write: n=%d err=%v", n, err)
	}
	n, err = s.WriteEvents(ctx, batch)
	if err != nil || n != 0 {
		t.Fatalf("second write: n=%d err=%v", n, err)
	}
	if got := count(t, pool, "SELECT count(*) FROM monitor.webhook_events"); got != 2 {
		t.Fatalf("rows = %d, want 2", got)
	}
	seen, err := s.LastSeen(ctx)
	if err != nil || len(seen) != 1 || seen[0].Total != 2 || seen[0].LastEventID != "e2" {
		t.Fatalf("last seen = %+v %v", seen, err)
	}
	// An event outside every partition lands in the default partition.
	if _, err := s.WriteEvents(ctx, []ledger.Event{event("old", now.AddDate(0, 0, -30))}); err != nil {
		t.Fatal(err)
	}
	if got := count(t, pool, "SELECT count(*) FROM monitor.webhook_events_default"); got != 1 {
		t.Fatalf("default rows = %d", got)
	}
}

func TestAttemptsFoldIntoOneDelivery(t *testing.T) {
	s, pool := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := s.WriteEvents(ctx, []ledger.Event{event("e1", now)}); err != nil {
		t.Fatal(err)
	}
	attempts := []ledger.Attempt{
		{EventID: "e1", Consumer: "deal-sync", Portal: "m1", Status: ledger.StatusError, Attempt: 1, Error: "boom",
			ErrorKind: "overload_limit", At: now.Add(time.Second)},
		{EventID: "e1", Consumer: "deal-sync", Portal: "m1", Status: ledger.StatusDone, Attempt: 2, At: now.Add(2 * time.Second),
			Duration: 15 * time.Millisecond},
		{EventID: "e1", Consumer: "tasks", Portal: "m1", Status: ledger.StatusSkipped, Attempt: 1, At: now.Add(time.Second)},
	}
	for range 2 { // a redelivered batch changes nothing
		if err := s.ApplyAttempts(ctx, attempts); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.Deliveries(ctx, "e1")
	if err != nil || len(ds) != 2 {
		t.Fatalf("deliveries = %+v %v", ds, err)
	}
	if d := ds[0]; d.Consumer != "deal-sync" || d.Status != ledger.StatusDone || d.Attempts != 2 || d.LastError != "" ||
		d.FirstAttemptAt == nil || !d.FirstAttemptAt.Equal(now.Add(time.Second)) || d.DurationMS != 15 {
		t.Errorf("deal-sync delivery = %+v", d)
	}
	if got := count(t, pool, "SELECT sum(n) FROM monitor.outcome_counts"); got != 3 {
		t.Errorf("counted %d attempts, want 3", got)
	}
	if got := count(t, pool, "SELECT sum(n) FROM monitor.outcome_counts WHERE error_kind = 'overload_limit'"); got != 1 {
		t.Errorf("overload count %d", got)
	}
	e, err := s.GetEvent(ctx, "e1")
	if err != nil || e.Status != ledger.StatusDone || string(e.Payload) != "data[FIELDS][ID]=42" {
		t.Fatalf("event = %+v %v", e, err)
	}
	if _, err := s.GetEvent(ctx, "nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("unknown event: %v", err)
	}
}

func TestDeadLetterAndReplay(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	dl := ledger.DeadLetter{Event: event("e9", now), Consumer: "deal-sync", Reason: "max_deliveries", Error: "timeout",
		Deliveries: 5, StreamSeq: 7, At: now.Add(time.Minute)}
	for range 2 {
		if err := s.ApplyDeadLetters(ctx, []ledger.DeadLetter{dl}); err != nil {
			t.Fatal(err)
		}
	}
	// A late RETRY outcome of an earlier attempt does not revive the delivery.
	if err := s.ApplyAttempts(ctx, []ledger.Attempt{{EventID: "e9", Consumer: "deal-sync", Status: ledger.StatusError, Attempt: 4, At: now}}); err != nil {
		t.Fatal(err)
	}
	dead, err := s.DeadLetters(ctx, ledger.DeliveryFilter{Consumer: "deal-sync"})
	if err != nil || len(dead) != 1 || dead[0].Status != ledger.StatusDead || dead[0].Attempts != 5 || dead[0].DeadReason != "max_deliveries" {
		t.Fatalf("dead letters = %+v %v", dead, err)
	}
	page, err := s.SearchEvents(ctx, ledger.EventFilter{Status: ledger.StatusDead})
	if err != nil || len(page.Events) != 1 || page.Events[0].ID != "e9" || page.Events[0].Status != ledger.StatusDead {
		t.Fatalf("search dead = %+v %v", page, err)
	}
	r := ledger.Replay{ID: "e9-r1", OriginalID: "e9", ReplayedFrom: "e9", Consumer: "deal-sync", RequestedAt: now}
	if err := s.RecordReplay(ctx, r); err != nil {
		t.Fatal(err)
	}
	dead, _ = s.DeadLetters(ctx, ledger.DeliveryFilter{})
	if dead[0].Replay == nil || dead[0].Replay.Status != ledger.StatusPending {
		t.Fatalf("replay = %+v", dead[0].Replay)
	}
	if err := s.ApplyAttempts(ctx, []ledger.Attempt{{EventID: "e9-r1", Consumer: "deal-sync", Status: ledger.StatusDone, Attempt: 1, At: now}}); err != nil {
		t.Fatal(err)
	}
	dead, _ = s.DeadLetters(ctx, ledger.DeliveryFilter{})
	if dead[0].Replay.Status != ledger.StatusDone {
		t.Fatalf("replay after done = %+v", dead[0].Replay)
	}
}

func TestSearchEventsFiltersAndCursor(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	var evs []ledger.Event
	for i := range 25 {
		e := event(fmt.Sprintf("s%02d", i), base.Add(time.Duration(i)*time.Second))
		if i%5 == 0 {
			e.EventType, e.Portal, e.Source = "ONTASKADD", "m2", "offline"
		}
		evs = append(evs, e)
	}
	if _, err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    ledger.EventFilter
		want int
	}{
		{"all", ledger.EventFilter{Limit: 1000}, 25},
		{"portal", ledger.EventFilter{Portal: "m2"}, 5},
		{"type", ledger.EventFilter{EventType: "ONCRMDEALUPDATE"}, 20},
		{"source", ledger.EventFilter{Source: "offline"}, 5},
		{"entity", ledger.EventFilter{EntityID: "42"}, 25},
		{"range", ledger.EventFilter{From: base.Add(10 * time.Second), To: base.Add(20 * time.Second)}, 10},
		{"received", ledger.EventFilter{Status: ledger.StatusReceived}, 25},
		{"done", ledger.EventFilter{Status: ledger.StatusDone}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.SearchEvents(ctx, tt.f)
			if err != nil || len(page.Events) != tt.want {
				t.Fatalf("got %d events, err %v; want %d", len(page.Events), err, tt.want)
			}
		})
	}
	// Paging through with a cursor visits every event once, newest first.
	var ids []string
	cursor := ""
	for {
		page, err := s.SearchEvents(ctx, ledger.EventFilter{Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			ids = append(ids, e.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(ids) != 25 || ids[0] != "s24" || ids[24] != "s00" {
		t.Fatalf("paged ids = %v", ids)
	}
	if _, err := s.SearchEvents(ctx, ledger.EventFilter{Cursor: "!!"}); !errors.Is(err, ledger.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestMaintainPartitionsRetention(t *testing.T) {
	s, pool := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := s.WriteEvents(ctx, []ledger.Event{event("old", now.Add(-6*24*time.Hour)), event("new", now)}); err != nil {
		t.Fatal(err)
	}
	// A row three days ahead lands in the default partition; creating that
	// day's partition later moves it.
	if _, err := s.WriteEvents(ctx, []ledger.Event{event("future", now.Add(72*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	dropped, err := s.MaintainPartitions(ctx, now.Add(2*24*time.Hour), 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if dropped < 1 {
		t.Errorf("dropped %d partitions", dropped)
	}
	if got := count(t, pool, "SELECT count(*) FROM monitor.webhook_events WHERE id = 'old'"); got != 0 {
		t.Errorf("event older than the horizon kept")
	}
	if got := count(t, pool, "SELECT count(*) FROM monitor.webhook_events WHERE id IN ('new', 'future')"); got != 2 {
		t.Errorf("recent events lost: %d", got)
	}
	if got := count(t, pool, "SELECT count(*) FROM monitor.webhook_events_default"); got != 0 {
		t.Errorf("future row still in default partition")
	}
}

// TestDeadLettersPageByKey: DeliveryFilter.After continues the dead
// letters after the last row of a page, so a replay walks any number of
// them: 2,500 dead letters (two consumers, many sharing one dead_at) come
// back in three pages, each exactly once, newest first.
func TestDeadLettersPageByKey(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	var dls []ledger.DeadLetter
	for i := range 1250 {
		at := now.Add(time.Duration(i/10) * time.Second) // ten share each dead_at
		for _, c := range []string{"deal-sync", "tasks"} {
			dls = append(dls, ledger.DeadLetter{Event: event(fmt.Sprintf("e%04d", i), now), Consumer: c, Reason: "max_deliveries",
				Error: "timeout", Deliveries: 4, StreamSeq: uint64(i + 1), At: at})
		}
	}
	for i := 0; i < len(dls); i += 500 {
		if err := s.ApplyDeadLetters(ctx, dls[i:min(i+500, len(dls))]); err != nil {
			t.Fatal(err)
		}
	}
	f := ledger.DeliveryFilter{DeadOnly: true, Limit: ledger.MaxPage}
	seen := map[string]bool{}
	var pages int
	var last ledger.DeliveryKey
	for {
		rows, err := s.DeadLetters(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		pages++
		for _, d := range rows {
			k := d.EventID + "/" + d.Consumer
			if seen[k] {
				t.Fatalf("page %d: %s again", pages, k)
			}
			seen[k] = true
			key := d.Key(f)
			if !last.At.IsZero() && key.At.After(last.At) {
				t.Fatalf("page %d: %s out of order", pages, k)
			}
			last = key
		}
		f.After = rows[len(rows)-1].Key(f)
	}
	if len(seen) != len(dls) || pages != 3 {
		t.Errorf("%d dead letters in %d pages, want %d in 3", len(seen), pages, len(dls))
	}
}
