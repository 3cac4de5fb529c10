package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/subscriptions/internal/store"
	"github.com/nats-io/nats.go/jetstream"
)

// Declaration is what the subscriptions service is: the one source its
// command, Kubernetes manifests, NATS permissions and local-stack
// registration derive from (see libs/svcdecl).
//
// Every replica answers install verifications and the control requests;
// the rest runs on the holder of the lease LeaseName in B24_LEASES, so the
// service is a singleton.
var Declaration = svcdecl.Service{
	Name:    "subscriptions",
	Summary: "Keeps every portal's event bindings as declared, verifies app installs, pulls offline events and reconciles missed ones.",
	Role:    svcdecl.RoleControl,
	Consumers: []svcdecl.Consumer{{
		Durable: LifecycleDurable, Stream: eventbus.StreamEvents,
		FilterSubjects: eventbus.RawEventFilter(LifecycleEvents...),
	}},
	Publishes: []string{
		// Offline events and reconciled changes enter as raw events.
		eventbus.RawEvent("*", "*"),
		eventbus.Outcome(LifecycleDurable, "*"),
		eventbus.Dead(LifecycleDurable, "*", "*"),
	},
	Subscribes: []string{eventbus.ControlInstall, eventbus.ControlSubscriptionsDiff, eventbus.ControlSubscriptionsApply},
	Buckets: []svcdecl.Bucket{
		{Name: eventbus.BucketPortals, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketRateLimit, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketTokens, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketLeases, Access: svcdecl.ReadWrite},
	},
	Database:     &svcdecl.Database{Schema: store.Schema, Migrations: store.Migrations},
	PortalClient: true,
	Scaling:      svcdecl.Scaling{Singleton: true, MinReplicas: 2},
	Env: []svcdecl.Env{
		{Name: "B24HUB_INSTANCE_ID", FieldPath: "metadata.name", Comment: "Lease holder identity: the pod name."},
		{Name: "B24HUB_HANDLER_URL", Value: "https://b24hub.example.com",
			Comment: "Public base URL of the ingress; event handlers are bound to\n<this>/bitrix24/events. Overlays set it to the Ingress host."},
	},
}

// Command is the subscriptions command (cmd/subscriptions): its
// declaration and how it starts; libs/svcmain does the rest.
var Command = svcmain.Service{Declaration: Declaration, Start: start}

// start reads the configuration and wires the service. Unlike the
// consumers, subscriptions needs the installed portals: a missing portals
// bucket is an error.
func start(ctx context.Context, p *svcmain.Process) (svcmain.Running, error) {
	cfg, err := ConfigFromEnv(p.Getenv)
	if err != nil {
		return svcmain.Running{}, err
	}
	reg := p.Registry
	if reg == nil {
		js, err := jetstream.New(p.NATS)
		if err != nil {
			return svcmain.Running{}, err
		}
		if reg, err = svcmain.WatchPortals(ctx, js, cfg.PortalsFile, p.Log); err != nil {
			return svcmain.Running{}, err
		}
	}
	svc, err := New(cfg, Deps{NC: p.NATS, Pool: p.Pool, Portals: reg, Logger: p.Log})
	if err != nil {
		return svcmain.Running{}, err
	}
	return svcmain.Running{Ready: svc.Ready, Run: svc.Run, Service: svc}, nil
}

// Config is the service's own configuration, read from the environment by
// ConfigFromEnv (libs/svcmain.ParseEnv; the database, NATS, admin and
// telemetry settings are libs/svcmain's). Secrets may come from a file
// (the _FILE variant) instead.
type Config struct {
	// SubscriptionsFile is the desired-subscriptions YAML (see
	// docs/subscriptions.md); optional; default: hybrid delivery of deal
	// and task events, both reconciled, probe on, for every installed
	// portal.
	SubscriptionsFile string `env:"B24HUB_SUBSCRIPTIONS_FILE"`
	// PortalsFile is the operators' portals file (libs/portals); optional.
	PortalsFile string `env:"B24HUB_PORTALS_FILE"`
	// HandlerURL is the public base URL of the ingress; handlers are bound
	// to HandlerURL + "/bitrix24/events". Required unless every entry of
	// the subscriptions file names its handler.
	HandlerURL string `env:"B24HUB_HANDLER_URL"`
	// CredentialsKey is the 32-byte AES-256 key that encrypts stored OAuth
	// credentials, base64. B24HUB_CREDENTIALS_KEY or
	// B24HUB_CREDENTIALS_KEY_FILE, required. Never logged.
	CredentialsKey []byte
	// OldCredentialsKeys are previous keys still accepted for reading
	// during a rotation. B24HUB_CREDENTIALS_OLD_KEYS (comma-separated
	// base64), optional.
	OldCredentialsKeys [][]byte
	// AllowedHosts are on-premise portal hosts ("crm.example.com",
	// "10.0.0.5:8443") trusted in addition to the Bitrix24 cloud domains for
	// ONAPPINSTALL verification; only these may be reached over plain http.
	// Comma-separated, optional.
	AllowedHosts []string `env:"B24HUB_INSTALL_ALLOWED_HOSTS"`
	// AppClientID and AppClientSecret are the application's OAuth
	// credentials (token refresh; AppClientID also pins installs to this
	// application). B24HUB_APP_CLIENT_ID, B24HUB_APP_CLIENT_SECRET or
	// B24HUB_APP_CLIENT_SECRET_FILE; required to call installed portals.
	AppClientID     string
	AppClientSecret string
	// SyncInterval is how often every portal's subscriptions are checked
	// and repaired.
	SyncInterval time.Duration `env:"B24HUB_SYNC_INTERVAL" envDefault:"10m"`
	// ReconcileInterval is the polling-reconciliation period.
	ReconcileInterval time.Duration `env:"B24HUB_RECONCILE_INTERVAL" envDefault:"5m"`
	// ReconcileOverlap is how far before the watermark each poll starts.
	ReconcileOverlap time.Duration `env:"B24HUB_RECONCILE_OVERLAP" envDefault:"1m"`
	// ReconcileLookback is where the first poll of a new portal starts.
	ReconcileLookback time.Duration `env:"B24HUB_RECONCILE_LOOKBACK" envDefault:"1h"`
	// OfflinePollInterval is how often offline queues are drained without
	// an ONOFFLINEEVENT (the notification is best effort).
	OfflinePollInterval time.Duration `env:"B24HUB_OFFLINE_POLL_INTERVAL" envDefault:"1m"`
	// ProbeInterval is how often event.test is sent.
	ProbeInterval time.Duration `env:"B24HUB_PROBE_INTERVAL" envDefault:"5m" zero:"disables the probe"`
	// LeaseTTL bounds how long a crashed leader blocks the singleton work;
	// a graceful shutdown hands over at once. At least 1s.
	LeaseTTL time.Duration `env:"B24HUB_LEASE_TTL" envDefault:"15s"`
	// InstallTimeout bounds the verification call of an install.
	InstallTimeout time.Duration `env:"B24HUB_INSTALL_TIMEOUT" envDefault:"5s"`
	// InstanceID names this replica in the lease; default the host name
	// plus the process id.
	InstanceID string `env:"B24HUB_INSTANCE_ID"`
}

// String renders the configuration for logs with secrets masked.
func (c Config) String() string {
	return fmt.Sprintf("subscriptions_file=%q handler_url=%q credentials_key=*** allowed_hosts=%v app_client_id=%q app_client_secret=%s "+
		"sync=%s reconcile=%s offline_poll=%s probe=%s lease_ttl=%s instance=%q",
		c.SubscriptionsFile, c.HandlerURL, c.AllowedHosts, c.AppClientID, mask(c.AppClientSecret),
		c.SyncInterval, c.ReconcileInterval, c.OfflinePollInterval, c.ProbeInterval, c.LeaseTTL, c.InstanceID)
}

func mask(s string) string {
	if s == "" {
		return `""`
	}
	return "***"
}

// App returns the application settings in the form every service shares
// (bitrixport.App): the credentials key and the app's client id and secret.
func (c Config) App() bitrixport.App {
	return bitrixport.App{ClientID: c.AppClientID, ClientSecret: c.AppClientSecret,
		CredentialsKey: c.CredentialsKey, OldCredentialsKeys: c.OldCredentialsKeys}
}

// ConfigFromEnv reads the configuration. It fails on a value that does not
// parse and when the credentials key is missing, naming the variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	errs := []error{svcmain.ParseEnv(getenv, &c)}
	c.HandlerURL = strings.TrimRight(c.HandlerURL, "/")
	hosts := c.AllowedHosts[:0]
	for _, h := range c.AllowedHosts {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	c.AllowedHosts = hosts
	// The application settings are read like every service reads them
	// (bitrixport.AppFromEnv); only here is the key required.
	app, err := bitrixport.AppFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	} else if len(app.CredentialsKey) == 0 {
		errs = append(errs, errors.New("B24HUB_CREDENTIALS_KEY (or B24HUB_CREDENTIALS_KEY_FILE) is required: a base64 32-byte key, e.g. from `openssl rand -base64 32`"))
	}
	c.CredentialsKey, c.OldCredentialsKeys = app.CredentialsKey, app.OldCredentialsKeys
	c.AppClientID, c.AppClientSecret = app.ClientID, app.ClientSecret
	if c.LeaseTTL > 0 && c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("B24HUB_LEASE_TTL=%s: want at least 1s", c.LeaseTTL))
	}
	if c.InstanceID == "" {
		host, _ := os.Hostname()
		c.InstanceID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return c, errors.Join(errs...)
}
