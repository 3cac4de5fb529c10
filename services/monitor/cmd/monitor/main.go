// Command monitor runs the b24hub monitor: delivery ledger, alerts,
// dashboard and replay. Configuration is read from B24HUB_* environment
// variables (see services/monitor/README.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
	_ "time/tzdata" // business-hours calendars work in images without a zoneinfo database

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
)

// usage is printed for -h and, with exit status 2, for arguments the
// command does not know.
const usage = `usage: monitor [migrate]

Without arguments monitor runs until SIGINT or SIGTERM, configured by B24HUB_*
environment variables (see services/monitor/README.md).

  migrate  apply the schema migrations (schema monitor) to B24HUB_DATABASE_URL
           and exit. Needs PostgreSQL only. The service migrates when it starts
           too; this is for deploy pipelines (the Kubernetes migrate Job).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// run dispatches on args (the command line without the program name).
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	switch {
	case len(args) == 0:
		return serve(ctx, getenv, stdout)
	case len(args) == 1 && args[0] == "migrate":
		return migrate(ctx, getenv, stdout)
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		_, err := fmt.Fprint(stdout, usage)
		return err
	}
	return usageError(fmt.Sprintf("unexpected arguments %q", args))
}

// usageError is a command line the command does not understand.
type usageError string

func (e usageError) Error() string { return string(e) }

// exitCode writes err to w and returns the exit status: 0 without an error,
// 2 (after the usage) for a usage error, 1 for any other error.
func exitCode(err error, w io.Writer) int {
	var u usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		fmt.Fprintf(w, "monitor: %s\n\n%s", u, usage)
		return 2
	}
	fmt.Fprintln(w, "monitor:", err)
	return 1
}

// migrate applies the schema migrations and returns. It needs PostgreSQL
// only (B24HUB_DATABASE_URL): no NATS, no other setting.
func migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), "monitor")
	dbURL := getenv("B24HUB_DATABASE_URL")
	if dbURL == "" {
		dbURL = postgres.DefaultURL
	}
	pool, err := postgres.Open(ctx, dbURL, dbURL == postgres.DefaultURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := monitor.Migrate(ctx, pool); err != nil {
		return err
	}
	log.InfoContext(ctx, "schema migrated", "schema", monitor.Schema, "database", postgres.Redact(dbURL))
	return nil
}

// withPoolSize sets pool_max_conns when the URL does not: the three ledger
// consumers, the evaluator's lease connection and the API each need one, and
// pgxpool's default is max(4, CPUs).
func withPoolSize(dsn string, n int) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Query().Has("pool_max_conns") {
		return dsn
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String()
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}

// serve starts the monitor and blocks until ctx ends. NATS or PostgreSQL being
// down at start is not fatal: the monitor serves /healthz at once, reports
// not ready, and catches up when they come back.
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), "monitor")
	cfg, err := monitor.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, "monitor", getenv)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, tel.Shutdown(sctx))
	}()

	natsURL := envOr(getenv, "B24HUB_NATS_URL", nats.DefaultURL)
	nc, err := nats.Connect(natsURL, nats.Name("b24hub-monitor"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second))
	if err != nil {
		return fmt.Errorf("nats %s: %w", natsURL, err)
	}
	defer func() { err = errors.Join(err, nc.Drain()) }()

	dbURL := envOr(getenv, "B24HUB_DATABASE_URL", postgres.DefaultURL)
	dbURL = withPoolSize(dbURL, 10)
	pool, err := postgres.Open(ctx, dbURL, dbURL == postgres.DefaultURL)
	if err != nil {
		// PostgreSQL is down: connect lazily; the monitor waits for it.
		log.WarnContext(ctx, "postgres unavailable at start; the monitor will wait for it", "error", err)
		if pool, err = pgxpool.New(ctx, dbURL); err != nil {
			return fmt.Errorf("postgres %s: %w", postgres.Redact(dbURL), err)
		}
	}
	defer pool.Close()

	svc, err := monitor.New(cfg, monitor.Deps{NC: nc, Pool: pool, Logger: log, Metrics: tel.MetricsHandler()})
	if err != nil {
		return err
	}
	if cfg.Token == "" {
		fmt.Fprintf(stdout, "monitor: no B24HUB_MONITOR_TOKEN set; generated API token: %s\n", svc.Token())
	}
	fmt.Fprintf(stdout, "monitor: dashboard and API on http://%s/\n", svc.Addr())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(gctx) })
	if admin := envOr(getenv, "B24HUB_ADMIN_ADDR", ":9090"); admin != "off" {
		mux := http.NewServeMux()
		telemetry.NewHealth(map[string]telemetry.ReadyFunc{"monitor": svc.Ready}).Register(mux, tel.MetricsHandler())
		srv := &http.Server{Addr: admin, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin %s: %w", admin, err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	return g.Wait()
}
