package monitor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // business-hours calendars work in images without a zoneinfo database

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/monitor/internal/audit"
	"github.com/b24hub/b24hub/services/monitor/internal/ingest"
	"github.com/b24hub/b24hub/services/monitor/internal/schema"
)

// Declaration is what the monitor is: the one source its command,
// Kubernetes manifests, NATS permissions and local-stack registration
// derive from (see libs/svcdecl).
//
// Its API replicas are interchangeable and the alert evaluator inside
// holds a PostgreSQL advisory lease, so it runs a fixed two replicas (no
// autoscaler) and is no singleton.
var Declaration = svcdecl.Service{
	Name:    "monitor",
	Summary: "Records every event, outcome and dead letter in a delivery ledger, raises alerts, serves the dashboard and API, and replays events.",
	Role:    svcdecl.RoleObserver,
	Consumers: []svcdecl.Consumer{
		{Durable: ingest.DurableLedger, Stream: eventbus.StreamEvents, FilterSubjects: eventbus.RawEventFilter()},
		{Durable: ingest.DurableOutcomes, Stream: eventbus.StreamOutcomes, FilterSubjects: []string{eventbus.OutcomesPrefix + ".>"}},
		{Durable: ingest.DurableDead, Stream: eventbus.StreamDead, FilterSubjects: []string{eventbus.DeadPrefix + ".>"}},
	},
	// Replays enter as raw events again.
	// Replays republish raw events, or ask the destinations service to
	// deliver one message again to one destination.
	Publishes: []string{eventbus.RawEvent("*", "*"), eventbus.ControlDestinationsReplay},
	// The unfinished-age gauges read every durable's state and its oldest
	// unfinished message; the audit reads the raw stream's headers.
	Inspects: audit.AgedStreams,
	Scans:    []string{eventbus.StreamEvents},
	// The alert rules watch the live portal registry: the portals file and
	// the bucket.
	Buckets:     []svcdecl.Bucket{{Name: eventbus.BucketPortals, Access: svcdecl.Read}},
	Database:    &svcdecl.Database{Schema: schema.Name, Migrations: schema.Migrations},
	Ports:       []svcdecl.Port{{Name: "api", Port: 8081, Exposure: svcdecl.Cluster, Env: "B24HUB_MONITOR_ADDR"}},
	Scaling:     svcdecl.Scaling{MinReplicas: 2, MaxReplicas: 2},
	MemoryLimit: "512Mi",
	SecretFiles: []svcdecl.SecretFile{
		{Env: "B24HUB_MONITOR_TOKEN_FILE", Secret: "b24hub-monitor-token", Key: "token",
			Comment: "The API's bearer token (the dashboard and b24ctl send it)."},
		{Env: "B24HUB_PORTALS_FILE", Secret: "b24hub-portals", Key: "portals.yaml",
			Comment: "The live portal registry the alert rules watch (with the\nB24_PORTALS bucket): a portal removed here stops being watched."},
	},
	Env: []svcdecl.Env{{Name: "B24HUB_DATABASE_MAX_CONNS", Value: "10",
		Comment: "The three ledger consumers, the evaluator's lease connection and\nthe API each hold one; deploy/k8stest checks the cluster's budget."}},
}

// Command is the monitor command (cmd/monitor): its declaration and how it
// starts; libs/svcmain does the rest. PostgreSQL being down at start is not
// fatal: the monitor serves at once, reports not ready, migrates and
// catches up when it comes back.
var Command = svcmain.Service{Declaration: Declaration, Start: start, LazyDatabase: true}

// start reads the configuration and wires the monitor; without a
// configured token it prints the generated one for the operator.
func start(_ context.Context, p *svcmain.Process) (svcmain.Running, error) {
	cfg, err := ConfigFromEnv(p.Getenv)
	if err != nil {
		return svcmain.Running{}, err
	}
	deps := Deps{NC: p.NATS, Pool: p.Pool, Logger: p.Log, Metrics: p.Telemetry.MetricsHandler()}
	if p.Registry != nil { // a host's shared registry; else the monitor watches its own
		deps.Portals = p.Registry
	}
	svc, err := New(cfg, deps)
	if err != nil {
		return svcmain.Running{}, err
	}
	if cfg.Token == "" {
		fmt.Fprintf(p.Stdout, "monitor: no B24HUB_MONITOR_TOKEN set; generated API token: %s\n", svc.Token())
	}
	fmt.Fprintf(p.Stdout, "monitor: dashboard and API on http://%s/\n", svc.Addr())
	return svcmain.Running{Ready: svc.Ready, Run: svc.Run, Service: svc, Attrs: []any{"addr", svc.Addr()}}, nil
}

// Config configures the monitor. ConfigFromEnv reads it from B24HUB_*
// environment variables; the local stack may build it directly.
type Config struct {
	// Addr is where the API, the dashboard and /healthz /readyz are
	// served. Env B24HUB_MONITOR_ADDR; optional; default "127.0.0.1:8081"
	// (use ":8081" in a container). Port 0 picks a free port (see
	// Service.Addr).
	Addr string `env:"B24HUB_MONITOR_ADDR" envDefault:"127.0.0.1:8081"`
	// Token is the API bearer token, also the dashboard sign-in secret.
	// Env B24HUB_MONITOR_TOKEN, or B24HUB_MONITOR_TOKEN_FILE naming a file
	// that holds it (the file wins when both are set); optional: when
	// empty, New generates a random token (see Service.Token). Never logged.
	Token string `env:"B24HUB_MONITOR_TOKEN"`
	// TraceURLTemplate links an event's trace in a tracing UI; "{trace_id}"
	// is replaced, e.g. "http://jaeger:16686/trace/{trace_id}". Env
	// B24HUB_TRACE_URL_TEMPLATE; optional; default none (no link).
	TraceURLTemplate string `env:"B24HUB_TRACE_URL_TEMPLATE"`
	// PortalsFile is the operators' portals file (libs/portals). With the
	// B24_PORTALS bucket it is the live registry the alert rules watch: a
	// portal removed from it or uninstalled is no longer watched. Env
	// B24HUB_PORTALS_FILE; optional (then only installed portals are
	// watched); reloaded without restart. Ignored when Deps.Portals is set.
	PortalsFile string `env:"B24HUB_PORTALS_FILE"`
	// AlertRulesFile is the YAML alert rules file. Env
	// B24HUB_ALERT_RULES_FILE; optional; default: the built-in rules
	// (alert.DefaultRulesYAML, documented in docs/monitor.md).
	AlertRulesFile string `env:"B24HUB_ALERT_RULES_FILE"`
	// Retention is how long the ledger keeps events, deliveries and
	// counts. Env B24HUB_MONITOR_RETENTION (Go duration, at least 24h);
	// optional; default 720h (30 days).
	Retention time.Duration `env:"B24HUB_MONITOR_RETENTION" envDefault:"720h"`
	// BatchSize is the largest batch written to PostgreSQL at once. Env
	// B24HUB_MONITOR_BATCH_SIZE; optional; default 500.
	BatchSize int `env:"B24HUB_MONITOR_BATCH_SIZE" envDefault:"500"`
	// BatchWait is how long a batch waits to fill after its first message.
	// Env B24HUB_MONITOR_BATCH_WAIT; optional; default 20ms.
	BatchWait time.Duration `env:"B24HUB_MONITOR_BATCH_WAIT" envDefault:"20ms" zero:"write each batch at once"`
	// ReplayMax bounds one bulk replay request. Env
	// B24HUB_MONITOR_REPLAY_MAX; optional; default 100000 (replay.DefaultMax).
	ReplayMax int `env:"B24HUB_MONITOR_REPLAY_MAX" envDefault:"100000"`
	// MaintainEvery is the period of partition creation and retention.
	// Env B24HUB_MONITOR_MAINTAIN_EVERY; optional; default 1h.
	MaintainEvery time.Duration `env:"B24HUB_MONITOR_MAINTAIN_EVERY" envDefault:"1h"`
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
		c.ReplayMax = 100_000 // replay.DefaultMax
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
// docs, libs/svcmain.ParseEnv) and validates it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	if err := svcmain.ParseEnv(getenv, &c); err != nil {
		return Config{}, err
	}
	// B24HUB_MONITOR_TOKEN_FILE names a file holding the token; it wins.
	var file struct {
		Token string `env:"B24HUB_MONITOR_TOKEN_FILE,file"`
	}
	if err := svcmain.ParseEnv(getenv, &file); err != nil {
		return Config{}, fmt.Errorf("monitor: %w", err)
	}
	if file.Token != "" {
		c.Token = file.Token
	}
	c.Token = strings.TrimSpace(c.Token)
	return c, c.Validate()
}
