// Command subscriptions runs the b24hub subscriptions service on its own.
// Configuration is read from B24HUB_* environment variables; see the
// service README.
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

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/subscriptions"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// usage is printed for -h and, with exit status 2, for arguments the
// command does not know.
const usage = `usage: subscriptions [migrate]

Without arguments subscriptions runs until SIGINT or SIGTERM, configured by B24HUB_*
environment variables (see services/subscriptions/README.md).

  migrate  apply the schema migrations (schema subscriptions) to B24HUB_DATABASE_URL
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
		fmt.Fprintf(w, "subscriptions: %s\n\n%s", u, usage)
		return 2
	}
	fmt.Fprintln(w, "subscriptions:", err)
	return 1
}

// migrate applies the schema migrations and returns. It needs PostgreSQL
// only (B24HUB_DATABASE_URL): no NATS, no other setting.
func migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), "subscriptions")
	dbURL := getenv("B24HUB_DATABASE_URL")
	if dbURL == "" {
		dbURL = postgres.DefaultURL
	}
	pool, err := postgres.Open(ctx, dbURL, dbURL == postgres.DefaultURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := subscriptions.Migrate(ctx, pool); err != nil {
		return err
	}
	log.InfoContext(ctx, "schema migrated", "schema", subscriptions.Schema, "database", postgres.Redact(dbURL))
	return nil
}

// serve runs the service until ctx ends, then drains and returns.
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), "subscriptions")
	cfg, err := subscriptions.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, "subscriptions", getenv)
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
	nc, err := nats.Connect(natsURL, nats.Name("b24hub-subscriptions"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", natsURL, err)
	}
	defer nc.Close()
	dbURL := getenv("B24HUB_DATABASE_URL")
	if dbURL == "" {
		dbURL = postgres.DefaultURL
	}
	pool, err := postgres.Open(ctx, dbURL, dbURL == postgres.DefaultURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	reg := portals.NewRegistry()
	if path := getenv("B24HUB_PORTALS_FILE"); path != "" {
		if err := reg.LoadFile(path); err != nil {
			return err
		}
		go reg.WatchFile(ctx, path, 5*time.Second, log)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		return fmt.Errorf("portals bucket: %w (run `b24ctl topology apply`)", err)
	}
	if err := reg.WatchKV(ctx, kv, log); err != nil {
		return err
	}

	svc, err := subscriptions.New(cfg, subscriptions.Deps{NC: nc, Pool: pool, Portals: reg, Logger: log})
	if err != nil {
		return err
	}
	adminAddr := getenv("B24HUB_ADMIN_ADDR")
	if adminAddr == "" {
		adminAddr = ":9090"
	}
	health := telemetry.NewHealth(map[string]telemetry.ReadyFunc{"subscriptions": svc.Ready})
	mux := http.NewServeMux()
	health.Register(mux, tel.MetricsHandler())
	ln, err := net.Listen("tcp", adminAddr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w (set B24HUB_ADMIN_ADDR to a free address)", adminAddr, err)
	}
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(gctx) })
	g.Go(func() error {
		if err := admin.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		health.Drain()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
		defer cancel()
		return admin.Shutdown(sctx)
	})
	if err := g.Wait(); err != nil {
		return err
	}
	return nc.Drain()
}
