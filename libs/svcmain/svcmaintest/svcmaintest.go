// Package svcmaintest checks a service's svcmain.Command the same way for
// every service: `migrate` against a real PostgreSQL, the command line and
// the exit status of the real main.
package svcmaintest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Run checks cmd and main (the command's main function) as subtests:
//
//   - Migrate: `<name> migrate` twice against a fresh database (the URL
//     newDatabase returns; pass libs/pgtest's NewDatabase) with NATS
//     unreachable creates cmd.Schema with its version table, exits 0 and is
//     idempotent; without a schema it exits 0 and touches no database, and
//     newDatabase may be nil;
//   - CommandLine: help goes to stdout with status 0; anything but no
//     argument, `migrate` or help is a usage error with status 2;
//   - MainExitStatus: main, run in a child process, exits 2 on an unknown
//     argument.
//
// Call it from a top-level test of package main, in one line. The
// database comes from the caller so that this package, which ships in
// libs/svcmain's module, links no test double.
func Run(t *testing.T, cmd svcmain.Command, main func(), newDatabase func(testing.TB) string) {
	if os.Getenv("B24HUB_TEST_RUN_MAIN") == "1" {
		os.Args = []string{cmd.Name, "bogus"}
		main()
		return
	}
	top := t.Name()
	t.Run("Migrate", func(t *testing.T) { testMigrate(t, cmd, newDatabase) })
	t.Run("CommandLine", func(t *testing.T) { testCommandLine(t, cmd) })
	t.Run("MainExitStatus", func(t *testing.T) {
		c := exec.Command(os.Args[0], "-test.run=^"+top+"$")
		c.Env = append(os.Environ(), "B24HUB_TEST_RUN_MAIN=1")
		var stderr bytes.Buffer
		c.Stderr = &stderr
		err := c.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "usage:") {
			t.Fatalf("exit %v, stderr %q", err, stderr.String())
		}
	})
}

func testMigrate(t *testing.T, cmd svcmain.Command, newDatabase func(testing.TB) string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if cmd.Schema == "" {
		// No database: `migrate` succeeds without touching one, so deploy
		// pipelines may run it for every service alike.
		var out bytes.Buffer
		err := cmd.Run(ctx, []string{"migrate"}, func(k string) string {
			return map[string]string{"B24HUB_DATABASE_URL": "postgres://127.0.0.1:1/none", "B24HUB_NATS_URL": "nats://127.0.0.1:1"}[k]
		}, &out)
		if code := cmd.ExitCode(err, &out); code != 0 || !strings.Contains(out.String(), "owns no schema") {
			t.Fatalf("exit %d, output:\n%s", code, out.String())
		}
		return
	}
	if newDatabase == nil {
		t.Fatalf("%s owns schema %s: pass a newDatabase (pgtest.NewDatabase)", cmd.Name, cmd.Schema)
	}
	dsn := newDatabase(t)
	env := map[string]string{"B24HUB_DATABASE_URL": dsn, "B24HUB_NATS_URL": "nats://127.0.0.1:1"}
	for i := range 2 {
		var out bytes.Buffer
		err := cmd.Run(ctx, []string{"migrate"}, func(k string) string { return env[k] }, &out)
		if code := cmd.ExitCode(err, &out); code != 0 || !strings.Contains(out.String(), "schema migrated") {
			t.Fatalf("run %d: exit %d, output:\n%s", i+1, code, out.String())
		}
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var version int
	if err := pool.QueryRow(ctx, `SELECT version FROM `+cmd.Schema+`.schema_version`).Scan(&version); err != nil || version < 1 {
		t.Fatalf("schema_version = %d, %v", version, err)
	}
}

func testCommandLine(t *testing.T, cmd svcmain.Command) {
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, 0},
		{[]string{"-h"}, 0},
		{[]string{"help"}, 0},
		{[]string{"migrat"}, 2},
		{[]string{"migrate", "now"}, 2},
		{[]string{"--config", "x"}, 2},
	} {
		var out, stderr bytes.Buffer
		err := cmd.Run(context.Background(), tt.args, func(string) string { return "" }, &out)
		code := cmd.ExitCode(err, &stderr)
		if code != tt.code {
			t.Errorf("%q: exit %d, want %d (%v)", tt.args, code, tt.code, err)
		}
		if usage := out.String() + stderr.String(); !strings.Contains(usage, "usage: "+cmd.Name+" [migrate") {
			t.Errorf("%q: no usage in %q", tt.args, usage)
		}
	}
}
