package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/services/subscriptions/internal/store"
)

func TestStore(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	for range 2 { // idempotent
		if err := store.Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	s := store.New(pool)

	if _, ok, err := s.Watermark(ctx, "m1", "deal"); ok || err != nil {
		t.Fatalf("empty watermark: %v %v", ok, err)
	}
	t1 := time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)
	for _, w := range []time.Time{t1, t1.Add(-time.Hour)} { // never moves back
		if err := s.SetWatermark(ctx, "m1", "deal", w); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok, err := s.Watermark(ctx, "m1", "deal"); !ok || err != nil || !got.Equal(t1) {
		t.Fatalf("watermark = %v %v %v", got, ok, err)
	}

	if err := s.SetPendingBatch(ctx, "m1", "p1"); err != nil {
		t.Fatal(err)
	}
	if pid, ok, _ := s.PendingBatch(ctx, "m1"); !ok || pid != "p1" {
		t.Fatalf("pending = %q %v", pid, ok)
	}
	_ = s.ClearPendingBatch(ctx, "m1", "other") // only the named batch
	if _, ok, _ := s.PendingBatch(ctx, "m1"); !ok {
		t.Fatal("wrong batch cleared")
	}
	_ = s.ClearPendingBatch(ctx, "m1", "p1")
	if _, ok, _ := s.PendingBatch(ctx, "m1"); ok {
		t.Fatal("batch not cleared")
	}

	if err := s.RecordInstall(ctx, store.InstallRecord{MemberID: "m1", Event: "ONAPPINSTALL", Accepted: false, Reason: "host"}); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Installs(ctx, "m1", 10); err != nil || len(rs) != 1 || rs[0].Reason != "host" {
		t.Fatalf("installs = %+v %v", rs, err)
	}

	sent := time.Now().Add(-time.Second)
	_ = s.ProbeSent(ctx, "p1", "m1", sent)
	if got, ok, err := s.ProbeReceived(ctx, "p1", time.Now()); !ok || err != nil || got.Sub(sent).Abs() > time.Millisecond {
		t.Fatalf("probe = %v %v %v", got, ok, err)
	}
	if _, ok, _ := s.ProbeReceived(ctx, "p1", time.Now()); ok {
		t.Fatal("probe answered twice")
	}
	if err := s.RecordSync(ctx, store.SyncStatus{MemberID: "m1", CheckedAt: time.Now(), Drift: 2}); err != nil {
		t.Fatal(err)
	}
}

// TestPruneInstalls: old audit rows go, forged floods included, but each
// portal's latest accepted decision per event stays (LastAccepted orders
// lifecycle events by it), and recent rows stay.
func TestPruneInstalls(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s := store.New(pool)
	for i := range 50 { // a forged flood
		if err := s.RecordInstall(ctx, store.InstallRecord{MemberID: "victim", Event: "ONAPPINSTALL", Reason: "forged " + string(rune('a'+i%26))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []store.InstallRecord{
		{MemberID: "m1", Event: "ONAPPINSTALL", Accepted: true},
		{MemberID: "m1", Event: "ONAPPINSTALL", Accepted: true}, // the latest: kept
		{MemberID: "m1", Event: "ONAPPUNINSTALL", Accepted: true},
	} {
		if err := s.RecordInstall(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE subscriptions.installs SET at = now() - interval '100 days'`); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordInstall(ctx, store.InstallRecord{MemberID: "m2", Event: "ONAPPINSTALL", Reason: "recent"}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneInstalls(ctx, time.Now().Add(-90*24*time.Hour))
	if err != nil || n != 51 {
		t.Fatalf("pruned %d (%v), want the 50 forged rows and m1's older install", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM subscriptions.installs`).Scan(&left); err != nil || left != 3 {
		t.Fatalf("%d rows left (%v), want m1's latest install and uninstall, and m2's recent row", left, err)
	}
	if _, ok, err := s.LastAccepted(ctx, "m1", "ONAPPINSTALL"); !ok || err != nil {
		t.Fatalf("m1's latest install pruned: %v %v", ok, err)
	}
}
