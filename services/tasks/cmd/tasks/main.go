// Command tasks runs the tasks service on its own. Configuration is
// read from B24HUB_* environment variables; see the service README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/consumer/bitrixport"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/tasks"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// usage is printed for -h and, with exit status 2, for arguments the
// command does not know.
const usage = `usage: tasks [migrate]

Without arguments tasks runs until SIGINT or SIGTERM, configured by B24HUB_*
environment variables (see services/tasks/README.md).

  migrate  apply the schema migrations (schema tasks) to B24HUB_DATABASE_URL
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
		fmt.Fprintf(w, "tasks: %s\n\n%s", u, usage)
		return 2
	}
	fmt.Fprintln(w, "tasks:", err)
	return 1
}

// migrate applies the schema migrations and returns. It needs PostgreSQL
// only (B24HUB_DATABASE_URL): no NATS, no other setting.
func migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), "tasks")
	dbURL := getenv("B24HUB_DATABASE_URL")
	if dbURL == "" {
		dbURL = postgres.DefaultURL
	}
	pool, err := postgres.Open(ctx, dbURL, true)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := tasks.Migrate(ctx, pool); err != nil {
		return err
	}
	log.InfoContext(ctx, "schema migrated", "schema", tasks.Schema, "database", postgres.Redact(dbURL))
	return nil
}

// serve runs the service until ctx ends, then drains and returns.
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	const name = "tasks"
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), name)
	cfg, err := tasks.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, name, getenv)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, tel.Shutdown(sctx))
	}()

	natsURL := getenv("B24HUB_NATS_URL")
	if natsURL == "" {
		natsURL = nats.DefaultURL
	}
	nc, err := nats.Connect(natsURL, nats.Name("b24hub-"+name), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", natsURL, err)
	}
	defer nc.Close()

	pool, err := postgres.Open(ctx, cfg.DatabaseURL, true)
	if err != nil {
		return err
	}
	defer pool.Close()

	reg := portals.NewRegistry()
	if cfg.PortalsFile != "" {
		if err := reg.LoadFile(cfg.PortalsFile); err != nil {
			return err
		}
		go reg.WatchFile(ctx, cfg.PortalsFile, 5*time.Second, log)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if kv, err := js.KeyValue(ctx, eventbus.BucketPortals); err == nil {
		if err := reg.WatchKV(ctx, kv, log); err != nil {
			return err
		}
	} else {
		log.WarnContext(ctx, "portals bucket missing; only the portals file is used", "error", err)
	}
	// Every replica of every service shares one leaky bucket per portal;
	// installed portals are called with the tokens in B24_TOKENS.
	clients, err := bitrixport.SharedClients(ctx, js, reg, cfg.App, bitrix.WithLogger(log))
	if err != nil {
		return err
	}

	svc, err := tasks.New(cfg, tasks.Deps{
		NC: nc, Pool: pool, Logger: log,
		Portals: clients,
	})
	if err != nil {
		return err
	}
	admin := adminAddr(getenv)
	health := telemetry.NewHealth(map[string]telemetry.ReadyFunc{name: svc.Ready})
	mux := http.NewServeMux()
	health.Register(mux, tel.MetricsHandler())
	srv := &http.Server{Addr: admin, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", admin)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", admin, err)
	}
	log.InfoContext(ctx, "tasks starting", "admin", ln.Addr().String(), "nats", natsURL,
		"database", postgres.Redact(cfg.DatabaseURL), "app", cfg.App.String(), "outbox_interval", cfg.OutboxInterval.String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(gctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		health.Drain()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nc.Drain()
}

func adminAddr(getenv func(string) string) string {
	if v := getenv("B24HUB_ADMIN_ADDR"); v != "" {
		return v
	}
	return ":9090"
}
