package svcmain

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Service is a service's whole command: what it is (its declaration) and
// how it starts. Every service's main is `svcmain.Main(<pkg>.Service)`.
type Service struct {
	// Declaration is the service's declaration (libs/svcdecl): its name
	// names the command, logger and NATS client; its Database, when set,
	// is migrated at start and by `<name> migrate`. Required.
	Declaration svcdecl.Service
	// Start wires the service on an opened Process (its NATS connection,
	// PostgreSQL pool — nil without a Database — logger, telemetry and
	// environment) and returns what runs. The declared schema is already
	// migrated, except with LazyDatabase. Required.
	Start func(ctx context.Context, p *Process) (Running, error)
	// Create says when a missing database is created (at start and by
	// `migrate`); default CreateLocalOnly.
	Create CreatePolicy
	// LazyDatabase lets the service start while PostgreSQL is down: the
	// pool connects when it can and svcmain does not migrate at start; the
	// service's Run migrates the declared schema once PostgreSQL answers
	// and reports not ready until then. The monitor uses it so that its
	// dashboard explains an outage instead of crash-looping. `migrate`
	// works the same for every service.
	LazyDatabase bool
}

// Running is a started service.
type Running struct {
	// Ready is the service's readiness check behind /readyz. Required.
	Ready telemetry.ReadyFunc
	// Run runs the service until ctx ends, then drains. Required.
	Run func(ctx context.Context) error
	// Attrs are logged with "<name> starting" (key, value pairs; never a
	// secret).
	Attrs []any
	// Service is the started service value (e.g. *ingress.Service), for a
	// host embedding it that needs more than Ready and Run: the local
	// stack prints the ingress's bound address and the monitor's token.
	Service any
}

// Main runs s's command line with the process's arguments and
// environment; see Command.Main.
func Main(s Service) { s.Command().Main() }

// Command is s's command line: serve (open the process, migrate, Start,
// serve the admin endpoints until a signal), `migrate`, `version`, help.
func (s Service) Command() Command {
	c := Command{Name: s.Declaration.Name, Create: s.Create, Serve: s.serve}
	if db := s.Declaration.Database; db != nil {
		c.Schema = db.Schema
		c.Migrate = func(ctx context.Context, pool *pgxpool.Pool) error {
			return postgres.Migrate(ctx, pool, db.Schema, db.Migrations)
		}
	}
	return c
}

func (s Service) serve(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	d := s.Declaration
	if err := d.Validate(); err != nil {
		return err
	}
	var dbURL string
	if d.Database != nil {
		dbURL = EnvOr(getenv, "B24HUB_DATABASE_URL", postgres.DefaultURL)
	}
	create := s.Create == CreateAlways || dbURL == postgres.DefaultURL
	p, err := open(ctx, d.Name, getenv, stdout, dbURL, create, s.LazyDatabase)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, p.Close(ctx)) }()

	r, err := s.StartIn(ctx, p)
	if err != nil {
		return err
	}
	return p.Serve(ctx, r.Ready, r.Run, r.Attrs...)
}

// StartIn migrates the declared schema on p.Pool (unless LazyDatabase)
// and starts the service on p. The command does this on a Process of its
// own; the local stack (services/devstack) on Processes sharing one NATS
// connection and pool, so every service starts the same way everywhere.
func (s Service) StartIn(ctx context.Context, p *Process) (Running, error) {
	d := s.Declaration
	if d.Database != nil && !s.LazyDatabase {
		if p.Pool == nil {
			return Running{}, fmt.Errorf("%s: declares schema %s but has no PostgreSQL pool", d.Name, d.Database.Schema)
		}
		if err := postgres.Migrate(ctx, p.Pool, d.Database.Schema, d.Database.Migrations); err != nil {
			return Running{}, err
		}
	}
	r, err := s.Start(ctx, p)
	if err != nil {
		return Running{}, err
	}
	if r.Ready == nil || r.Run == nil {
		return Running{}, fmt.Errorf("%s: Start returned no Ready or Run", d.Name)
	}
	return r, nil
}
