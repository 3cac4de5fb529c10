package destinations

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/services/destinations/internal/delivery"
	"github.com/b24hub/b24hub/services/destinations/internal/destfile"
)

// Config is the service's configuration. Every field has an environment
// variable (read by ConfigFromEnv) and says whether it is required.
type Config struct {
	// File is the destinations file (docs/destinations.md), re-read every
	// ReloadInterval. B24HUB_DESTINATIONS_FILE, optional: without it the
	// service delivers nothing.
	File string
	// ReloadInterval is how often the file is checked for changes.
	// B24HUB_DESTINATIONS_RELOAD, optional, default 5s.
	ReloadInterval time.Duration
	// Policy restricts what a destination may be:
	// B24HUB_DESTINATIONS_ALLOWED_HOSTS (comma-separated names or
	// "*.example.com"; optional, empty allows any public host — set it in
	// production) and B24HUB_DESTINATIONS_ALLOW_HTTP (true accepts http://
	// URLs; optional, default false, local development only).
	Policy destfile.Policy
	// AllowNets are private, loopback or link-local prefixes destinations
	// may reach anyway, e.g. "10.20.0.0/16". B24HUB_DESTINATIONS_ALLOW_NETS,
	// optional, default none: requests to such addresses are refused at
	// connect time, whatever the URL's name resolves to.
	AllowNets []netip.Prefix
	// Delivery is the retry schedule's start and ceiling
	// (B24HUB_DESTINATIONS_RETRY_INITIAL, default 1s, and
	// B24HUB_DESTINATIONS_RETRY_MAX, default 5m) and the circuit breaker:
	// B24HUB_DESTINATIONS_PAUSE_AFTER failed attempts in a row (default 10)
	// pause a destination for B24HUB_DESTINATIONS_PROBE_INTERVAL (default
	// 30s). Optional.
	Delivery delivery.Options
	// DrainTimeout bounds how long stopping every destination may take on
	// shutdown (in-flight requests are cancelled and their messages handed
	// back). B24HUB_SHUTDOWN_TIMEOUT, optional, default 20s.
	DrainTimeout time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{ReloadInterval: 5 * time.Second, DrainTimeout: 20 * time.Second, Delivery: delivery.Options{
		InitialInterval: time.Second, MaxInterval: 5 * time.Minute, PauseAfter: 10, ProbeInterval: 30 * time.Second}}
}

// ConfigFromEnv reads the configuration from B24HUB_* variables; it fails
// on values that do not parse, naming the variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	var errs []error
	c.File = getenv("B24HUB_DESTINATIONS_FILE")
	for name, dst := range map[string]*time.Duration{
		"B24HUB_DESTINATIONS_RELOAD":         &c.ReloadInterval,
		"B24HUB_DESTINATIONS_RETRY_INITIAL":  &c.Delivery.InitialInterval,
		"B24HUB_DESTINATIONS_RETRY_MAX":      &c.Delivery.MaxInterval,
		"B24HUB_DESTINATIONS_PROBE_INTERVAL": &c.Delivery.ProbeInterval,
		"B24HUB_SHUTDOWN_TIMEOUT":            &c.DrainTimeout,
	} {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 5s", name, v))
				continue
			}
			*dst = d
		}
	}
	if v := getenv("B24HUB_DESTINATIONS_PAUSE_AFTER"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("B24HUB_DESTINATIONS_PAUSE_AFTER=%q: want a number of failed attempts >= 1", v))
		}
		c.Delivery.PauseAfter = n
	}
	for _, h := range strings.Split(getenv("B24HUB_DESTINATIONS_ALLOWED_HOSTS"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.Policy.AllowedHosts = append(c.Policy.AllowedHosts, h)
		}
	}
	if v := getenv("B24HUB_DESTINATIONS_ALLOW_HTTP"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("B24HUB_DESTINATIONS_ALLOW_HTTP=%q: want true or false", v))
		}
		c.Policy.AllowHTTP = b
	}
	for _, n := range strings.Split(getenv("B24HUB_DESTINATIONS_ALLOW_NETS"), ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		p, err := netip.ParsePrefix(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("B24HUB_DESTINATIONS_ALLOW_NETS: %q: want a CIDR prefix like 10.20.0.0/16", n))
			continue
		}
		c.AllowNets = append(c.AllowNets, p.Masked())
	}
	return c, errors.Join(errs...)
}
