package svcmain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/eventbus/natsauth"
	"github.com/b24hub/b24hub/libs/portals"
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
	// Pool is nil for a service without a database.
	Pool *pgxpool.Pool
	// Getenv reads the service's environment (B24HUB_* settings).
	Getenv func(string) string
	// Registry, when set, is the portal registry Portals returns: a host
	// running several services in one process (the local stack) shares
	// one. Open leaves it nil.
	Registry *portals.Registry
	// Stdout is where the logger writes; a service may print a line for
	// its operator there too (the monitor's generated token).
	Stdout io.Writer

	natsURL string
	dbURL   string
	// stopWatch ends the connection's eventbus.ServerWatch.
	stopWatch func()
}

// Open sets up telemetry, connects to NATS (ConnectNATS) and
// opens dbURL, creating the database first when create is true; with an
// empty dbURL the service uses no database and Pool stays nil. On error it
// releases what it had opened.
func Open(ctx context.Context, name string, getenv func(string) string, stdout io.Writer, dbURL string, create bool) (p *Process, err error) {
	return open(ctx, name, getenv, stdout, dbURL, create, false)
}

// open is Open; an empty dbURL opens no pool, and lazy makes a pool that
// connects when PostgreSQL answers instead of failing now.
func open(ctx context.Context, name string, getenv func(string) string, stdout io.Writer, dbURL string, create, lazy bool) (p *Process, err error) {
	p = &Process{
		Name:   name,
		Log:    telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), name),
		Getenv: getenv, Stdout: stdout, dbURL: dbURL,
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
	if p.NATS, p.natsURL, err = ConnectNATS(name, getenv, nats.ReconnectWait(250*time.Millisecond)); err != nil {
		return p, err
	}
	// A connection to a NATS server cut off from the JetStream cluster
	// moves to another server instead of waiting out the partition.
	p.stopWatch = eventbus.ServerWatch{Log: p.Log}.Start(p.NATS)
	if dbURL == "" {
		return p, nil
	}
	maxConns, err := postgres.MaxConnsFromEnv(getenv)
	if err != nil {
		return p, err
	}
	if p.Pool, err = postgres.Open(ctx, dbURL, create, postgres.WithMaxConns(maxConns)); err != nil && lazy {
		p.Log.WarnContext(ctx, "PostgreSQL unavailable at start; waiting for it", "error", err)
		pcfg, cerr := postgres.PoolConfig(dbURL, postgres.WithMaxConns(maxConns))
		if cerr != nil {
			return p, cerr
		}
		if p.Pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
			return p, fmt.Errorf("postgres %s: %w", postgres.Redact(dbURL), err)
		}
	}
	return p, err
}

// Close closes the pool and the NATS connection and flushes telemetry,
// giving it 5 seconds even when ctx has ended. It returns the telemetry
// shutdown's error.
func (p *Process) Close(ctx context.Context) error {
	if p.Pool != nil {
		p.Pool.Close()
	}
	if p.stopWatch != nil {
		p.stopWatch()
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

// ConnectNATS connects the named service to NATS with the identity its
// environment gives (libs/eventbus/natsauth: B24HUB_NATS_URL, default
// nats.DefaultURL; B24HUB_NATS_CREDS, _NKEY, _USER/_PASSWORD, _TOKEN,
// _TLS_CA/_CERT/_KEY, _CONTEXT), client name b24hub-<name>, inbox prefix
// _INBOX.<name> (its NATS user may read its own replies only), and
// reconnecting forever, also on the first attempt. It returns the URL
// used; extra options come after these.
func ConnectNATS(name string, getenv func(string) string, extra ...nats.Option) (*nats.Conn, string, error) {
	cfg, err := natsauth.FromEnv(getenv)
	if err != nil {
		return nil, "", err
	}
	if cfg.InboxPrefix == "" {
		cfg.InboxPrefix = natsauth.InboxPrefix(name)
	}
	return cfg.Connect(append([]nats.Option{nats.Name("b24hub-" + name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true)}, extra...)...)
}
