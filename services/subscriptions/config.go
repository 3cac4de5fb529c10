package subscriptions

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
)

// Config is the service configuration. Every field is read from one
// environment variable by ConfigFromEnv; secrets may come from a file
// (the _FILE variant) instead.
type Config struct {
	// SubscriptionsFile is the desired-subscriptions YAML (see
	// docs/subscriptions.md). B24HUB_SUBSCRIPTIONS_FILE, optional; default:
	// hybrid delivery of deal and task events, both reconciled, probe on,
	// for every installed portal.
	SubscriptionsFile string
	// HandlerURL is the public base URL of the ingress; handlers are bound
	// to HandlerURL + "/bitrix24/events". B24HUB_HANDLER_URL, required
	// unless every entry of the subscriptions file names its handler.
	HandlerURL string
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
	// B24HUB_INSTALL_ALLOWED_HOSTS (comma-separated), optional.
	AllowedHosts []string
	// AppClientID and AppClientSecret are the application's OAuth
	// credentials (token refresh; AppClientID also pins installs to this
	// application). B24HUB_APP_CLIENT_ID, B24HUB_APP_CLIENT_SECRET or
	// B24HUB_APP_CLIENT_SECRET_FILE; required to call installed portals.
	AppClientID     string
	AppClientSecret string
	// SyncInterval is how often every portal's subscriptions are checked
	// and repaired. B24HUB_SYNC_INTERVAL, default 10m.
	SyncInterval time.Duration
	// ReconcileInterval is the polling-reconciliation period.
	// B24HUB_RECONCILE_INTERVAL, default 5m.
	ReconcileInterval time.Duration
	// ReconcileOverlap is how far before the watermark each poll starts.
	// B24HUB_RECONCILE_OVERLAP, default 1m.
	ReconcileOverlap time.Duration
	// ReconcileLookback is where the first poll of a new portal starts.
	// B24HUB_RECONCILE_LOOKBACK, default 1h.
	ReconcileLookback time.Duration
	// OfflinePollInterval is how often offline queues are drained without
	// an ONOFFLINEEVENT (the notification is best effort).
	// B24HUB_OFFLINE_POLL_INTERVAL, default 1m.
	OfflinePollInterval time.Duration
	// ProbeInterval is how often event.test is sent; 0 disables the probe.
	// B24HUB_PROBE_INTERVAL, default 5m.
	ProbeInterval time.Duration
	// LeaseTTL bounds how long a crashed leader blocks the singleton work;
	// a graceful shutdown hands over at once. B24HUB_LEASE_TTL, default 15s.
	LeaseTTL time.Duration
	// InstallTimeout bounds the verification call of an install.
	// B24HUB_INSTALL_TIMEOUT, default 5s.
	InstallTimeout time.Duration
	// InstanceID names this replica in the lease. B24HUB_INSTANCE_ID,
	// default the host name plus the process id.
	InstanceID string
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
	c := Config{
		SubscriptionsFile: getenv("B24HUB_SUBSCRIPTIONS_FILE"),
		HandlerURL:        strings.TrimRight(getenv("B24HUB_HANDLER_URL"), "/"),
		SyncInterval:      10 * time.Minute, ReconcileInterval: 5 * time.Minute,
		ReconcileOverlap: time.Minute, ReconcileLookback: time.Hour,
		OfflinePollInterval: time.Minute, ProbeInterval: 5 * time.Minute,
		LeaseTTL: 15 * time.Second, InstallTimeout: 5 * time.Second,
		InstanceID: getenv("B24HUB_INSTANCE_ID"),
	}
	var errs []error
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
	c.AllowedHosts = splitList(getenv("B24HUB_INSTALL_ALLOWED_HOSTS"))
	for name, dst := range map[string]*time.Duration{
		"B24HUB_SYNC_INTERVAL": &c.SyncInterval, "B24HUB_RECONCILE_INTERVAL": &c.ReconcileInterval,
		"B24HUB_RECONCILE_OVERLAP": &c.ReconcileOverlap, "B24HUB_RECONCILE_LOOKBACK": &c.ReconcileLookback,
		"B24HUB_OFFLINE_POLL_INTERVAL": &c.OfflinePollInterval, "B24HUB_PROBE_INTERVAL": &c.ProbeInterval,
		"B24HUB_LEASE_TTL": &c.LeaseTTL, "B24HUB_INSTALL_TIMEOUT": &c.InstallTimeout,
	} {
		v := getenv(name)
		if v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (d == 0 && name != "B24HUB_PROBE_INTERVAL") {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 5m", name, v))
			continue
		}
		*dst = d
	}
	if c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("B24HUB_LEASE_TTL=%s: want at least 1s", c.LeaseTTL))
	}
	if c.InstanceID == "" {
		host, _ := os.Hostname()
		c.InstanceID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return c, errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
