package tasks

import (
	"context"
	"errors"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/tasks/internal/consumer/taskevents"
	"github.com/b24hub/b24hub/services/tasks/internal/store"
)

// Declaration is what the tasks service is: the one source its command,
// Kubernetes manifests, NATS permissions and local-stack registration
// derive from (see libs/svcdecl).
var Declaration = svcdecl.Service{
	Name:    "tasks",
	Summary: "Mirrors tasks with their checklists and publishes field-level task changes.",
	Role:    svcdecl.RoleConsumer,
	Consumers: []svcdecl.Consumer{{
		Durable: taskevents.Durable, Stream: eventbus.StreamEvents,
		FilterSubjects: eventbus.RawEventFilter(taskevents.Events...),
	}},
	Publishes: []string{
		eventbus.Change(taskevents.EntityType, "*", "*"),
		eventbus.Outcome(taskevents.Durable, "*"),
		eventbus.Dead(taskevents.Durable, "*", "*"),
	},
	Buckets: []svcdecl.Bucket{
		{Name: eventbus.BucketPortals, Access: svcdecl.Read},
		{Name: eventbus.BucketRateLimit, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketTokens, Access: svcdecl.ReadWrite},
	},
	Database:     &svcdecl.Database{Schema: store.Schema, Migrations: store.Migrations},
	PortalClient: true,
}

// Command is the tasks command (cmd/tasks): its declaration and how it
// starts; libs/svcmain does the rest.
var Command = svcmain.Service{Declaration: Declaration, Start: start, Create: svcmain.CreateAlways}

// Config is the tasks service's configuration: what every consumer
// service reads (bitrixport.ConsumerConfig; the consumer tuning under
// B24HUB_TASKS_, e.g. B24HUB_TASKS_BATCH_WINDOW, default 200ms) and its
// own settings, read by svcmain.ParseEnv. The database, NATS, admin and
// telemetry settings are libs/svcmain's.
type Config struct {
	bitrixport.ConsumerConfig `env:"-"`
	// OutboxInterval is how often unpublished changes are retried.
	OutboxInterval time.Duration `env:"B24HUB_TASKS_OUTBOX_INTERVAL" envDefault:"1s"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	c, _ := ConfigFromEnv(func(string) string { return "" })
	return c
}

// ConfigFromEnv reads the configuration from B24HUB_* variables; it fails on
// values that do not parse, naming each variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	shared, err := bitrixport.ConsumerConfigFromEnv(getenv, "B24HUB_TASKS_")
	c := Config{ConsumerConfig: shared}
	return c, errors.Join(err, svcmain.ParseEnv(getenv, &c))
}

// start reads the configuration, builds the portal clients every replica
// of every service shares (one leaky bucket per portal; installed portals
// called with the tokens in B24_TOKENS) and wires the service.
func start(ctx context.Context, p *svcmain.Process) (svcmain.Running, error) {
	cfg, err := ConfigFromEnv(p.Getenv)
	if err != nil {
		return svcmain.Running{}, err
	}
	clients, err := cfg.Clients(ctx, p)
	if err != nil {
		return svcmain.Running{}, err
	}
	svc, err := New(cfg, Deps{NC: p.NATS, Pool: p.Pool, Logger: p.Log, Portals: clients})
	if err != nil {
		return svcmain.Running{}, err
	}
	return svcmain.Running{Ready: svc.Ready, Run: svc.Run, Service: svc,
		Attrs: []any{"app", cfg.App.String(), "outbox_interval", cfg.OutboxInterval.String()}}, nil
}
