// Command ingress runs the b24hub ingress on its own. Configuration is read
// from B24HUB_* environment variables; see the README.
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

	"github.com/b24hub/b24hub/libs/buildinfo"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/eventbus/natsauth"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "version" {
		fmt.Println("ingress", buildinfo.Read())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ingress:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), "ingress")
	cfg, err := ingress.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, "ingress", getenv)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = joinErr(err, tel.Shutdown(sctx))
	}()

	// Its own NATS identity (natsauth: creds, nkey, TLS, context) and its
	// own inbox, as libs/svcmain connects every other service.
	ncfg, err := natsauth.FromEnv(getenv)
	if err != nil {
		return err
	}
	ncfg.InboxPrefix = natsauth.InboxPrefix(ingress.Declaration.Name)
	nc, _, err := ncfg.Connect(nats.Name("b24hub-ingress"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return err
	}
	defer nc.Close()

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
	if kv, err := js.KeyValue(ctx, eventbus.BucketPortals); err == nil {
		if err := reg.WatchKV(ctx, kv, log); err != nil {
			return err
		}
	} else {
		log.WarnContext(ctx, "portals bucket missing; only the portals file is used (run `b24ctl topology apply`)", "error", err)
	}

	svc, err := ingress.New(cfg, ingress.Deps{NC: nc, Portals: reg, Logger: log, Metrics: tel.MetricsHandler()})
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(ctx) })
	// The admin port every service has (libs/svcdecl.AdminPort): probes and
	// the ServiceMonitor use it, so they never depend on the public port.
	if admin := adminAddr(getenv); admin != "off" {
		mux := http.NewServeMux()
		telemetry.NewHealth(map[string]telemetry.ReadyFunc{"jetstream": svc.Ready}).Register(mux, tel.MetricsHandler())
		srv := &http.Server{Addr: admin, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		ln, err := net.Listen("tcp", admin)
		if err != nil {
			return fmt.Errorf("admin listener %s: %w (set B24HUB_ADMIN_ADDR to a free address, or off)", admin, err)
		}
		fmt.Fprintf(stdout, "ingress: admin (/healthz, /readyz, /metrics) on http://%s/\n", ln.Addr())
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin %s: %w", admin, err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return nc.Drain()
}

// adminAddr is B24HUB_ADMIN_ADDR, default ":9090"; "off" disables it.
func adminAddr(getenv func(string) string) string {
	if v := getenv("B24HUB_ADMIN_ADDR"); v != "" {
		return v
	}
	return ":9090"
}

func joinErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
