package bitrixport

import (
	"context"
	"errors"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/svcmain"
)

// ConsumerConfig is the configuration every consumer service that calls
// portals reads alike (deal-sync, telephony, tasks and what `go tool task
// new-consumer` generates). A service embeds it in its own Config with
// the tag `env:"-"` next to its own settings, so svcmain.ParseEnv reads
// only those:
//
//	type Config struct {
//		bitrixport.ConsumerConfig `env:"-"`
//		OutboxInterval time.Duration `env:"B24HUB_TASKS_OUTBOX_INTERVAL" envDefault:"1s"`
//	}
type ConsumerConfig struct {
	// PortalsFile is the portal registry file with each portal's incoming
	// webhook URL (the stored credentials REST calls use).
	// B24HUB_PORTALS_FILE, optional: portals installed as the application
	// arrive through the NATS KV bucket B24_PORTALS.
	PortalsFile string `env:"B24HUB_PORTALS_FILE"`
	// App holds what calling portals installed as the application needs:
	// B24HUB_CREDENTIALS_KEY (or _FILE) opens the tokens the subscriptions
	// service stores in B24_TOKENS, B24HUB_CREDENTIALS_OLD_KEYS during a key
	// rotation, B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET (or
	// _FILE) refresh them (AppFromEnv). All optional: without them only
	// webhook portals are called, and events of installed portals are
	// dead-lettered (replay them once configured). Secrets are never logged.
	App App `env:"-"`
	// DrainTimeout bounds how long running handlers may finish on
	// shutdown. B24HUB_SHUTDOWN_TIMEOUT, default 20s.
	DrainTimeout time.Duration `env:"B24HUB_SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// Consumer tunes the service's (first) consumer under the service's
	// prefix: <prefix>ACK_WAIT, _BACKOFF, _MAX_DELIVER, _CONCURRENCY,
	// _BATCH_WINDOW (consumer.TuningFromEnv; each optional, unset keeps the
	// consumer's Spec).
	Consumer consumer.Tuning `env:"-"`
}

// ConsumerConfigFromEnv reads a ConsumerConfig, the consumer tuning under
// prefix (e.g. "B24HUB_TASKS_"). It fails on values that do not parse,
// naming every variable (never a secret's value).
func ConsumerConfigFromEnv(getenv func(string) string, prefix string) (ConsumerConfig, error) {
	var c ConsumerConfig
	err := svcmain.ParseEnv(getenv, &c)
	app, aerr := AppFromEnv(getenv)
	tuning, terr := consumer.TuningFromEnv(getenv, prefix)
	c.App, c.Consumer = app, tuning
	return c, errors.Join(err, aerr, terr)
}

// Clients returns the portal clients of the service process p: ForProcess
// with c's portals file and application.
func (c ConsumerConfig) Clients(ctx context.Context, p *svcmain.Process) (*RegistryClients, error) {
	return ForProcess(ctx, p, c.PortalsFile, c.App)
}
