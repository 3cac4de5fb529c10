package svcmain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
)

// Process is what a running service is given: its logger, telemetry, NATS
// connection and PostgreSQL pool. Open makes one; Close releases it.
type Process struct {
	// Name is the service name (logger, telemetry, NATS client name
	// b24hub-<Name>, readiness check).
	Name      string
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
	NATS      *nats.Conn
	Pool      *pgxpool.Pool

	getenv  func(string) string
	natsURL string
	dbURL   string
}

// Open sets up telemetry, connects to NATS (B24HUB_NATS_URL, default
// nats.DefaultURL; reconnecting forever, also on the first attempt) and
// opens dbURL, creating the database first when create is true. On error
// it releases what it had opened.
func Open(ctx context.Context, name string, getenv func(string) string, stdout io.Writer, dbURL string, create bool) (p *Process, err error) {
	p = &Process{
		Name:   name,
		Log:    telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), name),
		getenv: getenv, dbURL: dbURL,
		natsURL: EnvOr(getenv, "B24HUB_NATS_URL", nats.DefaultURL),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close(ctx))
			p = nil
		}
	}()
	if p.Telemetry, err = telemetry.Setup(ctx, name, getenv); err != nil {
		return p, err
	}
	p.NATS, err = nats.Connect(p.natsURL, nats.Name("b24hub-"+name), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return p, fmt.Errorf("connect to NATS at %s: %w", p.natsURL, err)
	}
	maxConns, err := postgres.MaxConnsFromEnv(getenv)
	if err != nil {
		return p, err
	}
	if p.Pool, err = postgres.Open(ctx, dbURL, create, postgres.WithMaxConns(maxConns)); err != nil {
		return p, err
	}
	return p, nil
}

// Close closes the pool and the NATS connection and flushes telemetry,
// giving it 5 seconds even when ctx has ended. It returns the telemetry
// shutdown's error.
func (p *Process) Close(ctx context.Context) error {
	if p.Pool != nil {
		p.Pool.Close()
	}
	if p.NATS != nil {
		p.NATS.Close()
	}
	if p.Telemetry == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return p.Telemetry.Shutdown(sctx)
}
