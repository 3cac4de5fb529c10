package postgres_test

import (
	"context"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/postgres"
)

func TestOpenCreatesDatabaseAndMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t) // exists; derive a sibling that does not
	missing := strings.Replace(dsn, "b24hub_test_", "b24hub_testnew_", 1)
	t.Cleanup(func() {
		pool, err := postgres.Open(ctx, pgtest.AdminURL(), false)
		if err == nil {
			name := missing[strings.LastIndex(missing, "/")+1:]
			_, _ = pool.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			pool.Close()
		}
	})
	if _, err := postgres.Open(ctx, missing, false); err == nil {
		t.Fatal("Open without create succeeded on a missing database")
	}
	pool, err := postgres.Open(ctx, missing+"&pool_max_conns=4", true)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for range 2 {
		if err := postgres.Migrate(ctx, pool, "svc", os.DirFS("testdata/migrations")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "INSERT INTO svc.things VALUES (1)"); err != nil {
		t.Fatal(err)
	}
}

func TestRedact(t *testing.T) {
	got := postgres.Redact("postgres://u:secret@h:5432/db")
	if strings.Contains(got, "secret") {
		t.Fatalf("password leaked: %s", got)
	}
}

func TestConcurrentMigrateOfOneSchema(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, pgtest.NewDatabase(t), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- postgres.Migrate(ctx, pool, "race", os.DirFS("testdata/migrations")) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
}

// TestMigrateComponent: a library's migrations in a service's schema keep
// their own version table, apart from the service's.
func TestMigrateComponent(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, pgtest.NewDatabase(t), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool, "svc", os.DirFS("testdata/migrations")); err != nil {
		t.Fatal(err)
	}
	lib := fstest.MapFS{"001_lib.sql": {Data: []byte("CREATE TABLE lib_things (id int);")}}
	for range 2 {
		if err := postgres.MigrateComponent(ctx, pool, "svc", "lib", lib); err != nil {
			t.Fatal(err)
		}
	}
	var service, component int
	if err := pool.QueryRow(ctx, "SELECT (SELECT version FROM svc.schema_version), (SELECT version FROM svc.lib_schema_version)").Scan(&service, &component); err != nil {
		t.Fatal(err)
	}
	if component != 1 || service < 1 {
		t.Errorf("versions: service %d, component %d", service, component)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO svc.lib_things VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "Lib", "lib.x", "lib; DROP"} {
		if err := postgres.MigrateComponent(ctx, pool, "svc", bad, lib); err == nil {
			t.Errorf("component %q accepted", bad)
		}
	}
}

// TestEveryMigrationRunsInItsSchema: tern resets the connection's settings
// after each migration, so a run that applies several migrations must still
// create the later ones' unqualified tables in the service's schema, never
// in public.
func TestEveryMigrationRunsInItsSchema(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	migrations := fstest.MapFS{
		"001_a.sql": {Data: []byte("CREATE TABLE a (id int);")},
		"002_b.sql": {Data: []byte("CREATE TABLE b (id int);")},
		"003_c.sql": {Data: []byte("ALTER TABLE b ADD COLUMN note text;")},
	}
	if err := postgres.Migrate(ctx, pool, "svc2", migrations); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_tables WHERE tablename IN ('a', 'b') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if strings.Join(got, ",") != "svc2.a,svc2.b" {
		t.Fatalf("tables %v, want svc2.a and svc2.b", got)
	}
}

// TestWithComponents: Migrate of migrations carrying a component applies
// the component after the service's own, with its own version table.
func TestWithComponents(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, pgtest.NewDatabase(t), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	svc := fstest.MapFS{"001_init.sql": {Data: []byte("CREATE TABLE things (id int);")}}
	// The component's migration needs the service's table: it runs after.
	lib := postgres.Component{Name: "lib", Migrations: fstest.MapFS{"001_lib.sql": {Data: []byte("CREATE TABLE lib_things AS SELECT * FROM things;")}}}
	m := postgres.WithComponents(svc, lib)
	if names, err := fs.Glob(m, "*.sql"); err != nil || len(names) != 1 {
		t.Fatalf("the result does not read like the service's migrations: %v %v", names, err)
	}
	for range 2 {
		if err := postgres.Migrate(ctx, pool, "svc", m); err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if err := pool.QueryRow(ctx, "SELECT version FROM svc.lib_schema_version").Scan(&v); err != nil || v != 1 {
		t.Errorf("component version %d %v", v, err)
	}
}
