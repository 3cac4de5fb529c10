package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestMigrate runs `tasks migrate` twice against a fresh database with NATS
// unreachable: it creates schema tasks with its version table, exits 0,
// and is idempotent.
func TestMigrate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := pgtest.NewDatabase(t)
	env := map[string]string{"B24HUB_DATABASE_URL": dsn, "B24HUB_NATS_URL": "nats://127.0.0.1:1"}
	for i := range 2 {
		var out bytes.Buffer
		err := run(ctx, []string{"migrate"}, func(k string) string { return env[k] }, &out)
		if code := exitCode(err, &out); code != 0 || !strings.Contains(out.String(), "schema migrated") {
			t.Fatalf("run %d: exit %d, output:\n%s", i+1, code, out.String())
		}
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var version int
	if err := pool.QueryRow(ctx, `SELECT version FROM tasks.schema_version`).Scan(&version); err != nil || version < 1 {
		t.Fatalf("schema_version = %d, %v", version, err)
	}
}

// TestCommandLine: help goes to stdout with status 0; anything but no
// argument, `migrate` or help is a usage error with status 2.
func TestCommandLine(t *testing.T) {
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
		err := run(context.Background(), tt.args, func(string) string { return "" }, &out)
		code := exitCode(err, &stderr)
		if code != tt.code {
			t.Errorf("%q: exit %d, want %d (%v)", tt.args, code, tt.code, err)
		}
		usage := out.String() + stderr.String()
		if !strings.Contains(usage, "usage: tasks [migrate]") {
			t.Errorf("%q: no usage in %q", tt.args, usage)
		}
	}
}

// TestMainExitStatus runs the real main in a child process: an unknown
// argument exits 2.
func TestMainExitStatus(t *testing.T) {
	if os.Getenv("B24HUB_TEST_RUN_MAIN") == "1" {
		os.Args = []string{"tasks", "bogus"}
		main()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainExitStatus$")
	cmd.Env = append(os.Environ(), "B24HUB_TEST_RUN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "usage:") {
		t.Fatalf("exit %v, stderr %q", err, stderr.String())
	}
}
