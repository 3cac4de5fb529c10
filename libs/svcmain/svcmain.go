// Package svcmain is the process plumbing every b24hub service command
// shares: the command line (no argument serves, `migrate` migrates, help,
// exit statuses 0/1/2), the `migrate` subcommand, opening telemetry, NATS
// and PostgreSQL, and serving the admin endpoints (/healthz, /readyz,
// /metrics) next to the service until a signal, then draining.
//
// A service's main is one line, `svcmain.Main(<pkg>.Service)`: a Service
// is the service's declaration (libs/svcdecl) and its Start function, and
// everything else — the command line, migrating the declared schema at
// start and for `migrate`, opening NATS, PostgreSQL and telemetry, the
// admin server — is here. ParseEnv reads a service's own settings.
package svcmain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/b24hub/b24hub/libs/buildinfo"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CreatePolicy says when `migrate` creates a missing database.
type CreatePolicy int

const (
	// CreateLocalOnly creates the database only when B24HUB_DATABASE_URL is
	// unset (the local postgres.DefaultURL). The zero value.
	CreateLocalOnly CreatePolicy = iota
	// CreateAlways creates the database whatever its URL.
	CreateAlways
)

// Command is a service's command line.
type Command struct {
	// Name is the program name (e.g. "deal-sync"); required. It prefixes
	// error output, names the logger and is the README directory
	// (services/<Name>/README.md) the usage points to.
	Name string
	// Schema is the PostgreSQL schema Migrate creates, shown in the usage
	// and the "schema migrated" log line; empty for a service without a
	// database.
	Schema string
	// Migrate applies the service's schema migrations; nil for a service
	// without a database (`migrate` then does nothing).
	Migrate func(ctx context.Context, pool *pgxpool.Pool) error
	// Create says when `migrate` creates a missing database; default
	// CreateLocalOnly.
	Create CreatePolicy
	// Serve runs the service until ctx ends; required.
	Serve func(ctx context.Context, getenv func(string) string, stdout io.Writer) error
}

// Main runs the command with the process's arguments and environment,
// cancelled by SIGINT or SIGTERM, and exits with ExitCode's status. Errors
// of the service and of its shutdown are joined, never dropped.
//
// B24HUB_CPU_PROFILE=<file> writes a CPU profile of the whole run to file
// (benchmarks: `go run ./tools/bench e2e -cpuprofile DIR`); unset, nothing
// is profiled.
func (c Command) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if f := os.Getenv("B24HUB_CPU_PROFILE"); f != "" {
		if out, err := os.Create(f); err == nil {
			_ = pprof.StartCPUProfile(out) // closed by the exit, after StopCPUProfile flushed it
		}
	}
	err := c.Run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	code := c.ExitCode(err, os.Stderr)
	pprof.StopCPUProfile()
	os.Exit(code)
}

// Run dispatches on args (the command line without the program name). An
// unknown command line returns a *UsageError.
func (c Command) Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	switch {
	case len(args) == 0:
		return c.Serve(ctx, getenv, stdout)
	case len(args) == 1 && args[0] == "migrate":
		return c.migrate(ctx, getenv, stdout)
	case len(args) == 1 && args[0] == "version":
		_, err := fmt.Fprintln(stdout, c.Name, buildinfo.Read())
		return err
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		_, err := fmt.Fprint(stdout, c.Usage())
		return err
	}
	return &UsageError{Args: args}
}

// Usage is printed for -h and, with exit status 2, for arguments the
// command does not know.
func (c Command) Usage() string {
	if c.Schema == "" {
		return fmt.Sprintf(`usage: %[1]s [migrate | version]

Without arguments %[1]s runs until SIGINT or SIGTERM, configured by B24HUB_*
environment variables (see services/%[1]s/README.md).

  migrate  do nothing: %[1]s owns no database schema (deploy pipelines may
           run it like every other service's).
  version  print the version, VCS revision and Go version of this binary.
`, c.Name)
	}
	return fmt.Sprintf(`usage: %[1]s [migrate | version]

Without arguments %[1]s runs until SIGINT or SIGTERM, configured by B24HUB_*
environment variables (see services/%[1]s/README.md).

  migrate  apply the schema migrations (schema %[2]s) to B24HUB_DATABASE_URL
           and exit. Needs PostgreSQL only. The service migrates when it starts
           too; this is for deploy pipelines (the Kubernetes migrate Job).
  version  print the version, VCS revision and Go version of this binary.
`, c.Name, c.Schema)
}

// UsageError is a command line the command does not understand.
type UsageError struct {
	Args []string
}

func (e *UsageError) Error() string { return fmt.Sprintf("unexpected arguments %q", e.Args) }

// ExitCode writes err to w and returns the exit status: 0 without an error,
// 2 (after the usage) for a *UsageError, 1 for any other error.
func (c Command) ExitCode(err error, w io.Writer) int {
	var u *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		fmt.Fprintf(w, "%s: %s\n\n%s", c.Name, u, c.Usage())
		return 2
	}
	fmt.Fprintln(w, c.Name+":", err)
	return 1
}
