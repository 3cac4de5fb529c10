// Command subscriptions runs the b24hub subscriptions service on its own.
// Configuration is read from B24HUB_* environment variables; see the
// service README.
package main

import (
	"context"
	"errors"
	"io"

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/subscriptions"
	"github.com/nats-io/nats.go/jetstream"
)

// command is the subscriptions command line: serve by default, or `migrate`.
var command = svcmain.Command{
	Name: "subscriptions", Schema: subscriptions.Schema, Migrate: subscriptions.Migrate,
	Create: svcmain.CreateLocalOnly, Serve: serve,
}

func main() { command.Main() }

// serve runs the service until ctx ends, then drains and returns.
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := subscriptions.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	dbURL := svcmain.EnvOr(getenv, "B24HUB_DATABASE_URL", postgres.DefaultURL)
	p, err := svcmain.Open(ctx, "subscriptions", getenv, stdout, dbURL, dbURL == postgres.DefaultURL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, p.Close(ctx)) }()

	js, err := jetstream.New(p.NATS)
	if err != nil {
		return err
	}
	// Unlike the consumers, subscriptions needs the installed portals: a
	// missing bucket is an error.
	reg, err := svcmain.WatchPortals(ctx, js, getenv("B24HUB_PORTALS_FILE"), p.Log)
	if err != nil {
		return err
	}
	svc, err := subscriptions.New(cfg, subscriptions.Deps{NC: p.NATS, Pool: p.Pool, Portals: reg, Logger: p.Log})
	if err != nil {
		return err
	}
	return p.Serve(ctx, svc.Ready, svc.Run)
}
