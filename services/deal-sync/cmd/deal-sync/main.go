// Command deal-sync runs the deal-sync service on its own. Configuration is
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
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "deal-sync:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) (err error) {
	const name = "deal-sync"
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), name)
	cfg, err := dealsync.ConfigFromEnv(getenv)
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

	svc, err := dealsync.New(cfg, dealsync.Deps{
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
	log.InfoContext(ctx, "deal-sync starting", "admin", ln.Addr().String(), "nats", natsURL,
		"database", postgres.Redact(cfg.DatabaseURL), "app", cfg.App.String(), "sync_lock_field", cfg.SyncLockField)

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
