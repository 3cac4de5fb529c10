package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestDatabaseFollowsDataDir: a data dir owns its database across
// restarts; a new data dir gets a new, empty one (so an earlier data dir's
// demo portal and alerts are not in it); the database of a removed data
// dir is dropped at the next start.
func TestDatabaseFollowsDataDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := pgtest.AdminURL()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required under CI=true: %v", err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	defer admin.Close(ctx)
	exists := func(name string) bool {
		var ok bool
		if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	log := slog.New(slog.DiscardHandler)
	open := func(dir string) stackDatabase {
		t.Helper()
		d, err := ownedDatabase(ctx, server, dir, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+d.Name+" WITH (FORCE)") })
		return d
	}
	hasDemoPortal := func(d stackDatabase) bool {
		c, err := pgx.Connect(ctx, d.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var ok bool
		if err := c.QueryRow(ctx, "SELECT to_regclass('public.demo_portal') IS NOT NULL").Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}

	dirA, dirB := filepath.Join(t.TempDir(), ".data"), filepath.Join(t.TempDir(), ".data")
	for _, d := range []string{dirA, dirB} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := open(dirA)
	if !a.Owned || !a.Created || !strings.HasPrefix(a.Name, devDatabasePrefix) || !strings.Contains(a.URL, "/"+a.Name+"?") {
		t.Fatalf("first start = %+v", a)
	}
	c, err := pgx.Connect(ctx, a.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE demo_portal (member_id text)"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)

	if again := open(dirA); again.Name != a.Name || again.Created || !hasDemoPortal(again) {
		t.Fatalf("restart on the same data dir = %+v", again)
	}
	b := open(dirB)
	if b.Name == a.Name || !b.Created || hasDemoPortal(b) {
		t.Fatalf("a new data dir reuses %+v (first %s)", b, a.Name)
	}
	if !strings.Contains(b.describe(dirB), "new, created for this data directory") {
		t.Errorf("banner: %s", b.describe(dirB))
	}

	if err := os.RemoveAll(dirA); err != nil {
		t.Fatal(err)
	}
	b2 := open(dirB)
	if b2.Name != b.Name || !slices.Contains(b2.Dropped, a.Name) || exists(a.Name) || !exists(b.Name) {
		t.Fatalf("after removing the first data dir: %+v; first database exists=%v", b2, exists(a.Name))
	}
	if !strings.Contains(b2.describe(dirB), a.Name) {
		t.Errorf("banner does not name the dropped database: %s", b2.describe(dirB))
	}
}

// TestOrphansOfAnotherHostAreKept: a database whose owner is a data dir on
// another machine sharing the server is never dropped.
func TestOrphansOfAnotherHostAreKept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required under CI=true: %v", err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	defer admin.Close(ctx)
	name := devDatabasePrefix + randomHex(4)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	gone := filepath.Join(t.TempDir(), "gone")
	for _, tt := range []struct {
		owner string
		drop  bool
	}{
		{ownerCommentPrefix + "elsewhere.example:" + gone, false},
		{ownerComment(gone), true},
	} {
		if _, err := admin.Exec(ctx, "COMMENT ON DATABASE "+name+" IS "+quoteLiteral(tt.owner)); err != nil {
			t.Fatal(err)
		}
		dropped := dropOrphans(ctx, admin, "none", slog.New(slog.DiscardHandler))
		if slices.Contains(dropped, name) != tt.drop {
			t.Errorf("owner %q: dropped %v, want drop=%v", tt.owner, dropped, tt.drop)
		}
	}
}

func TestDatabaseGivenIsReusedAndSaysSo(t *testing.T) {
	d := stackDatabase{URL: "postgres://u:secret@db:5432/shared"}
	got := d.describe(".data")
	if !strings.Contains(got, "reused as is") || strings.Contains(got, "secret") {
		t.Errorf("banner: %s", got)
	}
}

func TestDataDirDatabaseRejectsAForeignName(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, dataDirDatabaseFile), []byte("postgres\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dataDirDatabase(dir); err == nil || !strings.Contains(err.Error(), "delete the file") {
		t.Fatalf("err = %v", err)
	}
}
