package monitor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config configures the monitor. ConfigFromEnv reads it from B24HUB_*
// environment variables; the local stack may build it directly.
type Config struct {
	// Addr is where the API, the dashboard and /healthz /readyz /metrics
	// are served. Env B24HUB_MONITOR_ADDR; optional; default
	// "127.0.0.1:8081" (use ":8081" in a container). Port 0 picks a free
	// port (see Service.Addr).
	Addr string
	// Token is the API bearer token, also the dashboard sign-in secret.
	// Env B24HUB_MONITOR_TOKEN, or B24HUB_MONITOR_TOKEN_FILE naming a file
	// that holds it (the file wins when both are set); optional: when
	// empty, New generates a random token (see Service.Token). Never logged.
	Token string
	// TraceURLTemplate links an event's trace in a tracing UI; "{trace_id}"
	// is replaced, e.g. "http://jaeger:16686/trace/{trace_id}". Env
	// B24HUB_TRACE_URL_TEMPLATE; optional; default none (no link).
	TraceURLTemplate string
	// PortalsFile is the operators' portals file (libs/portals). With the
	// B24_PORTALS bucket it is the live registry the alert rules watch: a
	// portal removed from it or uninstalled is no longer watched. Env
	// B24HUB_PORTALS_FILE; optional (then only installed portals are
	// watched); reloaded without restart. Ignored when Deps.Portals is set.
	PortalsFile string
	// AlertRulesFile is the YAML alert rules file. Env
	// B24HUB_ALERT_RULES_FILE; optional; default: the built-in rules
	// (alert.DefaultRulesYAML, documented in docs/monitor.md).
	AlertRulesFile string
	// Retention is how long the ledger keeps events, deliveries and
	// counts. Env B24HUB_MONITOR_RETENTION (Go duration, at least 24h);
	// optional; default 720h (30 days).
	Retention time.Duration
	// BatchSize is the largest batch written to PostgreSQL at once. Env
	// B24HUB_MONITOR_BATCH_SIZE; optional; default 500.
	BatchSize int
	// BatchWait is how long a batch waits to fill after its first message.
	// Env B24HUB_MONITOR_BATCH_WAIT; optional; default 20ms.
	BatchWait time.Duration
	// ReplayMax bounds one bulk replay request. Env
	// B24HUB_MONITOR_REPLAY_MAX; optional; default 1000.
	ReplayMax int
	// MaintainEvery is the period of partition creation and retention.
	// Env B24HUB_MONITOR_MAINTAIN_EVERY; optional; default 1h.
	MaintainEvery time.Duration
}

// Defaults.
const (
	DefaultAddr      = "127.0.0.1:8081"
	DefaultRetention = 30 * 24 * time.Hour
)

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.BatchWait == 0 {
		c.BatchWait = 20 * time.Millisecond
	}
	if c.ReplayMax == 0 {
		c.ReplayMax = 1000
	}
	if c.MaintainEvery == 0 {
		c.MaintainEvery = time.Hour
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Retention < 24*time.Hour {
		errs = append(errs, fmt.Errorf("monitor: retention %s is shorter than 24h", c.Retention))
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("monitor: batch size %d out of range 1..10000", c.BatchSize))
	}
	if c.BatchWait < 0 || c.BatchWait > 10*time.Second {
		errs = append(errs, fmt.Errorf("monitor: batch wait %s out of range 0..10s", c.BatchWait))
	}
	if c.ReplayMax < 1 {
		errs = append(errs, fmt.Errorf("monitor: replay max %d < 1", c.ReplayMax))
	}
	if c.Token != "" && len(c.Token) < 16 {
		errs = append(errs, errors.New("monitor: token shorter than 16 characters"))
	}
	return errors.Join(errs...)
}

// String describes c for logs, with the token masked.
func (c Config) String() string {
	tok := "(generated)"
	if c.Token != "" {
		tok = "*****"
	}
	return fmt.Sprintf("addr=%s token=%s trace_url_template=%q alert_rules_file=%q portals_file=%q retention=%s batch=%d/%s replay_max=%d",
		c.Addr, tok, c.TraceURLTemplate, c.AlertRulesFile, c.PortalsFile, c.Retention, c.BatchSize, c.BatchWait, c.ReplayMax)
}

// ConfigFromEnv reads Config from environment variables (see the field
// docs) and validates it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Addr:             getenv("B24HUB_MONITOR_ADDR"),
		Token:            strings.TrimSpace(getenv("B24HUB_MONITOR_TOKEN")),
		TraceURLTemplate: getenv("B24HUB_TRACE_URL_TEMPLATE"),
		AlertRulesFile:   getenv("B24HUB_ALERT_RULES_FILE"),
		PortalsFile:      getenv("B24HUB_PORTALS_FILE"),
	}
	var errs []error
	if f := getenv("B24HUB_MONITOR_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("monitor: B24HUB_MONITOR_TOKEN_FILE: %w", err))
		}
		c.Token = strings.TrimSpace(string(b))
	}
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("monitor: %s: %w", name, err))
			}
			*dst = d
		}
	}
	num := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("monitor: %s: %w", name, err))
			}
			*dst = n
		}
	}
	dur("B24HUB_MONITOR_RETENTION", &c.Retention)
	dur("B24HUB_MONITOR_BATCH_WAIT", &c.BatchWait)
	dur("B24HUB_MONITOR_MAINTAIN_EVERY", &c.MaintainEvery)
	num("B24HUB_MONITOR_BATCH_SIZE", &c.BatchSize)
	num("B24HUB_MONITOR_REPLAY_MAX", &c.ReplayMax)
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	c = c.withDefaults()
	return c, c.Validate()
}
