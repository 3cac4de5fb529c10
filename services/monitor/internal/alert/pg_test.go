package alert_test

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/services/monitor/internal/alert"
	"github.com/b24hub/b24hub/services/monitor/internal/schema"
)

func TestPGLeaseIsExclusive(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	a, b := alert.NewPGLease(pool, alert.LeaseKey), alert.NewPGLease(pool, alert.LeaseKey)
	if !a.Hold(ctx) {
		t.Fatal("first replica did not get the lease")
	}
	if !a.Hold(ctx) {
		t.Fatal("first replica did not keep the lease")
	}
	if b.Hold(ctx) {
		t.Fatal("second replica got a held lease")
	}
	a.Release(ctx)
	if !b.Hold(ctx) {
		t.Fatal("lease not handed over after release")
	}
	b.Release(ctx)
}

func TestStoreRoundTrip(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s := alert.NewStore(pool)
	now := time.Now().UTC().Truncate(time.Microsecond)
	a := alert.Alert{Key: "r/t", Rule: "r", Kind: "silence", Target: "t", State: alert.StateFiring, StartedAt: now,
		UpdatedAt: now, Notified: map[string]string{"log": "firing"}}
	if err := s.Save(ctx, []alert.Alert{a}); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, true, 0)
	if err != nil || len(got) != 1 || got[0].Notified["log"] != "firing" || !got[0].StartedAt.Equal(now) {
		t.Fatalf("list = %+v %v", got, err)
	}
}
