package dealsync

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/postgres"
)

// Config is deal-sync's configuration. Every field has an environment
// variable (read by ConfigFromEnv) and says whether it is required.
type Config struct {
	// DatabaseURL is the PostgreSQL URL; the service uses its own schema
	// deal_sync in it. B24HUB_DATABASE_URL, optional, default
	// postgres.DefaultURL. Read by cmd/deal-sync (the local stack passes a
	// pool instead).
	DatabaseURL string
	// PortalsFile is the portal registry file with each portal's incoming
	// webhook URL (the stored credentials writes use). B24HUB_PORTALS_FILE,
	// optional (portals installed as apps arrive through NATS KV), no
	// default. Read by cmd/deal-sync.
	PortalsFile string
	// App holds what calling portals installed as the application needs:
	// B24HUB_CREDENTIALS_KEY (or _FILE) opens the tokens the subscriptions
	// service stores in B24_TOKENS, B24HUB_CREDENTIALS_OLD_KEYS during a key
	// rotation, B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET (or
	// _FILE) refresh them. All optional: without them only webhook portals
	// are called, and events of installed portals are dead-lettered (replay
	// them once configured). Secrets are never logged. Read by
	// cmd/deal-sync (the local stack reads it too).
	App bitrixport.App
	// SyncLockField is the deal field an external writer sets to flag a
	// sync write. B24HUB_DEALSYNC_SYNC_LOCK_FIELD, optional, default
	// UF_CRM_SYNC_LOCK; "-" disables the flag.
	SyncLockField string
	// SyncLockClearValue is written to clear the flag.
	// B24HUB_DEALSYNC_SYNC_LOCK_CLEAR, optional, default "" (empty).
	SyncLockClearValue string
	// VolatileFields change on every write and are ignored by echo
	// detection. B24HUB_DEALSYNC_VOLATILE_FIELDS, optional, comma-separated,
	// default DATE_MODIFY,MODIFY_BY_ID.
	VolatileFields []string
	// EchoTTL is how long an own write can explain an incoming change.
	// B24HUB_DEALSYNC_ECHO_TTL, optional, default 10m.
	EchoTTL time.Duration
	// OutboxInterval is how often unpublished domain changes are retried.
	// B24HUB_DEALSYNC_OUTBOX_INTERVAL, optional, default 1s.
	OutboxInterval time.Duration
	// DrainTimeout bounds how long running handlers may finish on shutdown.
	// B24HUB_SHUTDOWN_TIMEOUT, optional, default 20s.
	DrainTimeout time.Duration
	// Events tunes the deal-event consumer: B24HUB_DEALSYNC_ACK_WAIT
	// (default 30s), B24HUB_DEALSYNC_BACKOFF (default 1m,5m,15m),
	// B24HUB_DEALSYNC_MAX_DELIVER (default 4), B24HUB_DEALSYNC_CONCURRENCY
	// (default 4), B24HUB_DEALSYNC_BATCH_WINDOW (default 200ms). All optional.
	Events consumer.Tuning
	// Commands tunes the command consumer the same way with the prefix
	// B24HUB_DEALSYNC_COMMANDS_ (BATCH_WINDOW does not apply). All optional.
	Commands consumer.Tuning
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DatabaseURL:    postgres.DefaultURL,
		SyncLockField:  "UF_CRM_SYNC_LOCK",
		VolatileFields: []string{"DATE_MODIFY", "MODIFY_BY_ID"},
		EchoTTL:        10 * time.Minute,
		OutboxInterval: time.Second,
		DrainTimeout:   20 * time.Second,
	}
}

// ConfigFromEnv reads the configuration from B24HUB_* variables; it fails on
// values that do not parse.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	var errs []error
	if v := getenv("B24HUB_DATABASE_URL"); v != "" {
		c.DatabaseURL = v
	}
	c.PortalsFile = getenv("B24HUB_PORTALS_FILE")
	app, err := bitrixport.AppFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	c.App = app
	switch v := getenv("B24HUB_DEALSYNC_SYNC_LOCK_FIELD"); v {
	case "":
	case "-":
		c.SyncLockField = ""
	default:
		c.SyncLockField = v
	}
	c.SyncLockClearValue = getenv("B24HUB_DEALSYNC_SYNC_LOCK_CLEAR")
	if v := getenv("B24HUB_DEALSYNC_VOLATILE_FIELDS"); v != "" {
		c.VolatileFields = nil
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				c.VolatileFields = append(c.VolatileFields, f)
			}
		}
	}
	for name, dst := range map[string]*time.Duration{
		"B24HUB_DEALSYNC_ECHO_TTL": &c.EchoTTL, "B24HUB_DEALSYNC_OUTBOX_INTERVAL": &c.OutboxInterval,
		"B24HUB_SHUTDOWN_TIMEOUT": &c.DrainTimeout,
	} {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 10m", name, v))
			}
			*dst = d
		}
	}
	if c.Events, err = consumer.TuningFromEnv(getenv, "B24HUB_DEALSYNC_"); err != nil {
		errs = append(errs, err)
	}
	if c.Commands, err = consumer.TuningFromEnv(getenv, "B24HUB_DEALSYNC_COMMANDS_"); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}
