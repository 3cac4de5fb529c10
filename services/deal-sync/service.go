package dealsync

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealcommands"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealevents"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
)

// Declaration is what deal-sync is: the one source its command,
// Kubernetes manifests, NATS permissions and local-stack registration
// derive from (see libs/svcdecl).
var Declaration = svcdecl.Service{
	Name:    "deal-sync",
	Summary: "Mirrors deals and publishes field-level deal changes; writes deal updates other systems command.",
	Role:    svcdecl.RoleConsumer,
	Consumers: []svcdecl.Consumer{
		{
			Durable: dealevents.Durable, Stream: eventbus.StreamEvents,
			FilterSubjects: eventbus.RawEventFilter(dealevents.Events...),
		},
		{
			Durable: dealcommands.Durable, Stream: eventbus.StreamCommands,
			FilterSubjects: []string{eventbus.Command(dealcommands.EntityType, "*", dealcommands.Action)},
		},
	},
	Publishes: []string{
		eventbus.Change(dealevents.EntityType, "*", "*"),
		eventbus.Outcome(dealevents.Durable, "*"),
		eventbus.Dead(dealevents.Durable, "*", "*"),
		eventbus.Outcome(dealcommands.Durable, "*"),
		eventbus.Dead(dealcommands.Durable, "*", "*"),
	},
	Buckets: []svcdecl.Bucket{
		{Name: eventbus.BucketPortals, Access: svcdecl.Read},
		{Name: eventbus.BucketRateLimit, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketTokens, Access: svcdecl.ReadWrite},
	},
	Database:     &svcdecl.Database{Schema: store.Schema, Migrations: store.Migrations},
	PortalClient: true,
}

// Command is the deal-sync command (cmd/deal-sync): its declaration and
// how it starts; libs/svcmain does the rest.
var Command = svcmain.Service{Declaration: Declaration, Start: start, Create: svcmain.CreateAlways}

// Config is deal-sync's configuration: what every consumer service reads
// (bitrixport.ConsumerConfig; its Consumer tunes the deal-event consumer
// under B24HUB_DEALSYNC_, e.g. B24HUB_DEALSYNC_BATCH_WINDOW, default
// 200ms) and its own settings, read by svcmain.ParseEnv. The database,
// NATS, admin and telemetry settings are libs/svcmain's.
type Config struct {
	bitrixport.ConsumerConfig `env:"-"`
	// SyncLockField is the deal field an external writer sets to flag a
	// sync write; "-" disables the flag.
	SyncLockField string `env:"B24HUB_DEALSYNC_SYNC_LOCK_FIELD" envDefault:"UF_CRM_SYNC_LOCK"`
	// SyncLockClearValue is written to clear the flag; default empty.
	SyncLockClearValue string `env:"B24HUB_DEALSYNC_SYNC_LOCK_CLEAR"`
	// VolatileFields change on every write and are ignored by echo
	// detection; comma-separated.
	VolatileFields []string `env:"B24HUB_DEALSYNC_VOLATILE_FIELDS" envDefault:"DATE_MODIFY,MODIFY_BY_ID"`
	// EchoTTL is how long an own write can explain an incoming change.
	EchoTTL time.Duration `env:"B24HUB_DEALSYNC_ECHO_TTL" envDefault:"10m"`
	// OutboxInterval is how often unpublished domain changes are retried.
	OutboxInterval time.Duration `env:"B24HUB_DEALSYNC_OUTBOX_INTERVAL" envDefault:"1s"`
	// Commands tunes the command consumer the same way with the prefix
	// B24HUB_DEALSYNC_COMMANDS_ (BATCH_WINDOW does not apply). All optional.
	Commands consumer.Tuning `env:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	c, _ := ConfigFromEnv(func(string) string { return "" })
	return c
}

// ConfigFromEnv reads the configuration from B24HUB_* variables; it fails on
// values that do not parse, naming each variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	shared, serr := bitrixport.ConsumerConfigFromEnv(getenv, "B24HUB_DEALSYNC_")
	c := Config{ConsumerConfig: shared}
	err := svcmain.ParseEnv(getenv, &c)
	if c.SyncLockField == "-" {
		c.SyncLockField = ""
	}
	fields := c.VolatileFields[:0]
	for _, f := range c.VolatileFields {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	c.VolatileFields = fields
	commands, cerr := consumer.TuningFromEnv(getenv, "B24HUB_DEALSYNC_COMMANDS_")
	c.Commands = commands
	return c, errors.Join(serr, err, cerr)
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
		Attrs: []any{"app", cfg.App.String(), "sync_lock_field", cfg.SyncLockField}}, nil
}
