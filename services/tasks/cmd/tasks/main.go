// Command tasks runs the tasks service on its own. Configuration is
// read from B24HUB_* environment variables; see the service README.
package main

import (
	"context"
	"errors"
	"io"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/tasks"
	"github.com/nats-io/nats.go/jetstream"
)

// command is the tasks command line: serve by default, or `migrate`.
var command = svcmain.Command{
	Name: "tasks", Schema: tasks.Schema, Migrate: tasks.Migrate,
	Create: svcmain.CreateAlways, Serve: serve,
}

func main() { command.Main() }

// serve runs the service until ctx ends, then drains and returns.
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := tasks.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	p, err := svcmain.Open(ctx, "tasks", getenv, stdout, cfg.DatabaseURL, true)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, p.Close(ctx)) }()

	js, err := jetstream.New(p.NATS)
	if err != nil {
		return err
	}
	reg, err := svcmain.WatchPortals(ctx, js, cfg.PortalsFile, p.Log)
	if errors.Is(err, svcmain.ErrNoPortalsBucket) {
		p.Log.WarnContext(ctx, "portals bucket missing; only the portals file is used", "error", err)
	} else if err != nil {
		return err
	}
	// Every replica of every service shares one leaky bucket per portal;
	// installed portals are called with the tokens in B24_TOKENS.
	clients, err := bitrixport.SharedClients(ctx, js, reg, cfg.App, bitrix.WithLogger(p.Log))
	if err != nil {
		return err
	}
	svc, err := tasks.New(cfg, tasks.Deps{NC: p.NATS, Pool: p.Pool, Logger: p.Log, Portals: clients})
	if err != nil {
		return err
	}
	return p.Serve(ctx, svc.Ready, svc.Run, "app", cfg.App.String(), "outbox_interval", cfg.OutboxInterval.String())
}
