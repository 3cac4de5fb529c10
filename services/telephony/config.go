package telephony

import (
	"errors"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/postgres"
)

// Config is telephony's configuration. Every field has an environment
// variable (read by ConfigFromEnv) and says whether it is required.
type Config struct {
	// DatabaseURL is the PostgreSQL URL; the service uses its own schema
	// telephony in it. B24HUB_DATABASE_URL, optional, default
	// postgres.DefaultURL. Read by cmd/telephony.
	DatabaseURL string
	// PortalsFile is the portal registry file (incoming webhook URLs).
	// B24HUB_PORTALS_FILE, optional, no default. Read by cmd/telephony.
	PortalsFile string
	// App holds what calling portals installed as the application needs:
	// B24HUB_CREDENTIALS_KEY (or _FILE) opens the tokens the subscriptions
	// service stores in B24_TOKENS, B24HUB_CREDENTIALS_OLD_KEYS during a key
	// rotation, B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET (or
	// _FILE) refresh them. All optional: without them only webhook portals
	// are called, and events of installed portals are dead-lettered (replay
	// them once configured). Secrets are never logged. Read by
	// cmd/telephony (the local stack reads it too).
	App bitrixport.App
	// RecordingWait is how long after a call ends a missing recording is
	// waited for before "none" is recorded. B24HUB_TELEPHONY_RECORDING_WAIT,
	// optional, default 60s.
	RecordingWait time.Duration
	// RecordingPoll is the delay between looks for the recording.
	// B24HUB_TELEPHONY_RECORDING_POLL, optional, default 10s.
	RecordingPoll time.Duration
	// OutboxInterval is how often unpublished changes are retried.
	// B24HUB_TELEPHONY_OUTBOX_INTERVAL, optional, default 1s.
	OutboxInterval time.Duration
	// DrainTimeout bounds how long running handlers may finish on shutdown.
	// B24HUB_SHUTDOWN_TIMEOUT, optional, default 20s.
	DrainTimeout time.Duration
	// Consumer tunes the consumer: B24HUB_TELEPHONY_ACK_WAIT (default 30s),
	// B24HUB_TELEPHONY_BACKOFF (default 1m,5m,15m),
	// B24HUB_TELEPHONY_MAX_DELIVER (default 12: recording waits spend
	// deliveries), B24HUB_TELEPHONY_CONCURRENCY (default 4). All optional.
	Consumer consumer.Tuning
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{DatabaseURL: postgres.DefaultURL, RecordingWait: time.Minute, RecordingPoll: 10 * time.Second,
		OutboxInterval: time.Second, DrainTimeout: 20 * time.Second}
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
	for name, dst := range map[string]*time.Duration{
		"B24HUB_TELEPHONY_RECORDING_WAIT": &c.RecordingWait, "B24HUB_TELEPHONY_RECORDING_POLL": &c.RecordingPoll,
		"B24HUB_TELEPHONY_OUTBOX_INTERVAL": &c.OutboxInterval, "B24HUB_SHUTDOWN_TIMEOUT": &c.DrainTimeout,
	} {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 10s", name, v))
			}
			*dst = d
		}
	}
	if c.Consumer, err = consumer.TuningFromEnv(getenv, "B24HUB_TELEPHONY_"); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}
