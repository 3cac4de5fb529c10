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
	"time"
	_ "time/tzdata" // business-hours calendars work in images without a zoneinfo database

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
)

// command is the monitor command line: serve by default, or `migrate`.
var command = svcmain.Command{
	Name: "monitor", Schema: monitor.Schema, Migrate: monitor.Migrate,
	Create: svcmain.CreateLocalOnly, Serve: serve,
}

func main() { command.Main() }

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

	nc, _, err := svcmain.ConnectNATS("monitor", getenv, nats.ReconnectWait(time.Second))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nc.Drain()) }()

	dbURL := svcmain.EnvOr(getenv, "B24HUB_DATABASE_URL", postgres.DefaultURL)
	maxConns, err := postgres.MaxConnsFromEnv(getenv)
	if err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, dbURL, dbURL == postgres.DefaultURL, postgres.WithMaxConns(maxConns))
	if err != nil {
		// PostgreSQL is down: connect lazily; the monitor waits for it.
		log.WarnContext(ctx, "postgres unavailable at start; the monitor will wait for it", "error", err)
		pcfg, cerr := postgres.PoolConfig(dbURL, postgres.WithMaxConns(maxConns))
		if cerr != nil {
			return cerr
		}
		if pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
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
	if admin := svcmain.EnvOr(getenv, "B24HUB_ADMIN_ADDR", ":9090"); admin != "off" {
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
