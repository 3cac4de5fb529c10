package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/services/monitor/internal/schema"
	"github.com/b24hub/b24hub/services/monitor/internal/session"
)

func TestSessions(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	if err := schema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s := session.New(pool, func() time.Time { return now })

	a, exp, err := s.Create(ctx)
	if err != nil || !exp.Equal(now.Add(session.TTL)) || len(a) < 40 {
		t.Fatalf("Create = %q %v %v", a, exp, err)
	}
	b, _, _ := s.Create(ctx)
	c, _, _ := s.Create(ctx)
	valid := func(id string) bool {
		t.Helper()
		ok, err := s.Valid(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !valid(a) || !valid(b) || valid("made-up") || valid("") {
		t.Fatal("fresh sessions not valid, or a made-up one valid")
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM monitor.sessions WHERE id_sha256 = convert_to($1, 'UTF8')`, a).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("the session id is stored in clear (%d, %v)", stored, err)
	}
	if err := s.Revoke(ctx, a); err != nil || valid(a) || !valid(b) {
		t.Fatal("sign-out did not end exactly its session")
	}
	if n, err := s.RevokeAll(ctx); err != nil || n != 2 || valid(b) || valid(c) {
		t.Fatalf("RevokeAll = %d %v", n, err)
	}
	d, _, _ := s.Create(ctx)
	now = now.Add(session.TTL + time.Second)
	if valid(d) {
		t.Fatal("an expired session is valid")
	}
}
