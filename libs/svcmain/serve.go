package svcmain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/telemetry"
	"golang.org/x/sync/errgroup"
)

// Serve runs run and the admin server (B24HUB_ADMIN_ADDR, default :9090:
// /healthz, /readyz with ready as the service's check, /metrics) until ctx
// ends or either fails. On the way out /readyz reports draining, the admin
// server shuts down (5 seconds at most) and the NATS connection drains. It
// logs "<name> starting" with the admin address, NATS URL, redacted
// database URL and attrs.
//
// It returns the first error of run or the admin server (a listen error
// names the address), context.Canceled excepted, or the drain's error.
func (p *Process) Serve(ctx context.Context, ready telemetry.ReadyFunc, run func(context.Context) error, attrs ...any) error {
	addr := EnvOr(p.Getenv, "B24HUB_ADMIN_ADDR", ":9090")
	health := telemetry.NewHealth(map[string]telemetry.ReadyFunc{p.Name: ready})
	mux := http.NewServeMux()
	health.Register(mux, p.Telemetry.MetricsHandler())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w (set B24HUB_ADMIN_ADDR to a free address)", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	start := []any{"admin", ln.Addr().String(), "nats", p.natsURL}
	if p.dbURL != "" {
		start = append(start, "database", postgres.Redact(p.dbURL))
	}
	p.Log.InfoContext(ctx, p.Name+" starting", append(start, attrs...)...)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return run(gctx) })
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
	return p.NATS.Drain()
}
