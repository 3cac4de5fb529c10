package ingress

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/ingress/internal/budget"
)

// Declaration is what the ingress is: the one source its command,
// Kubernetes manifests, NATS permissions and local-stack registration
// derive from (see libs/svcdecl).
var Declaration = svcdecl.Service{
	Name:    "ingress",
	Summary: "Receives Bitrix24 event POSTs, authenticates them, strips secrets and stores each in JetStream before answering 200.",
	Role:    svcdecl.RoleEdge,
	Publishes: []string{
		eventbus.RawEvent("*", "*"),
		// An ONAPPINSTALL from an unknown portal is a request to the
		// subscriptions service (core NATS, never stored).
		eventbus.ControlInstall,
	},
	Buckets: []svcdecl.Bucket{{Name: eventbus.BucketPortals, Access: svcdecl.Read}},
	// Its readiness probe checks that the raw events stream exists.
	Checks:  []string{eventbus.StreamEvents},
	Ports:   []svcdecl.Port{{Name: "http", Port: 8080, Exposure: svcdecl.Public, Env: "B24HUB_INGRESS_ADDR"}},
	Scaling: svcdecl.Scaling{MinReplicas: 2, MaxReplicas: 10},
	SecretFiles: []svcdecl.SecretFile{{Env: "B24HUB_PORTALS_FILE", Secret: "b24hub-portals", Key: "portals.yaml",
		Comment: "The portals the ingress authenticates (with the B24_PORTALS bucket)."}},
}

// Command is the ingress command (cmd/ingress): its declaration and how it
// starts; libs/svcmain does the rest, including the admin server
// (B24HUB_ADMIN_ADDR: /healthz, /readyz, /metrics) every service has.
var Command = svcmain.Service{Declaration: Declaration, Start: start}

// Config is the ingress configuration, read from the environment by
// ConfigFromEnv (libs/svcmain.ParseEnv). Every field has a default.
type Config struct {
	// Addr is the listen address of the event routes.
	Addr string `env:"B24HUB_INGRESS_ADDR" envDefault:":8080"`
	// PortalsFile is the portals file (libs/portals) authenticating
	// events, with the B24_PORTALS bucket; optional. Read by Command.
	PortalsFile string `env:"B24HUB_PORTALS_FILE"`
	// MaxBodyBytes is the largest accepted body (1024 to 16777216); larger
	// gets 413.
	MaxBodyBytes int `env:"B24HUB_INGRESS_MAX_BODY_BYTES" envDefault:"262144"`
	// PublishTimeout is how long a request may wait for JetStream to confirm
	// before it is answered 503 (and for the verification of an
	// ONAPPINSTALL).
	PublishTimeout time.Duration `env:"B24HUB_INGRESS_PUBLISH_TIMEOUT" envDefault:"2s"`
	// ShutdownTimeout bounds the drain of in-flight requests.
	ShutdownTimeout time.Duration `env:"B24HUB_SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// AcceptInstalls forwards ONAPPINSTALL from unknown portals to the
	// subscriptions service for verification.
	AcceptInstalls bool `env:"B24HUB_INGRESS_ACCEPT_INSTALLS" envDefault:"true"`
	// TrustedProxies are the proxies (CIDRs, e.g. the Gateway's pod range)
	// whose X-Forwarded-For names the client's address; the per-source
	// bound on installs from unknown portals counts by that address.
	// Without them the connection's peer address is used and the header is
	// ignored, so a client cannot pick its own address.
	// B24HUB_INGRESS_TRUSTED_PROXIES (comma-separated CIDRs), default none.
	TrustedProxies []netip.Prefix
	// The per-portal budget (docs/security.md, "Tenant isolation"): the
	// sustained rate and burst of events, and of body bytes, one portal
	// may store; past either the answer is 429. Sized for floods, far
	// above a real portal's peak. The bytes burst must be at least
	// MaxBodyBytes.
	PortalEventsPerSecond float64 `env:"B24HUB_INGRESS_PORTAL_EVENTS_PER_SECOND" envDefault:"100"`
	PortalEventsBurst     int     `env:"B24HUB_INGRESS_PORTAL_EVENTS_BURST" envDefault:"20000"`
	PortalBytesPerSecond  float64 `env:"B24HUB_INGRESS_PORTAL_BYTES_PER_SECOND" envDefault:"262144"`
	PortalBytesBurst      int     `env:"B24HUB_INGRESS_PORTAL_BYTES_BURST" envDefault:"67108864"`
}

// portalBudget is the per-portal budget of c.
func (c Config) portalBudget() budget.Config {
	return budget.Config{EventsPerSecond: c.PortalEventsPerSecond, EventsBurst: c.PortalEventsBurst,
		BytesPerSecond: c.PortalBytesPerSecond, BytesBurst: c.PortalBytesBurst}
}

// Validate reports settings that parse but cannot work.
func (c Config) Validate() error {
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 16<<20 {
		return fmt.Errorf("B24HUB_INGRESS_MAX_BODY_BYTES=%d: want an integer from 1024 to 16777216", c.MaxBodyBytes)
	}
	if err := c.portalBudget().Validate(c.MaxBodyBytes); err != nil {
		return fmt.Errorf("B24HUB_INGRESS_PORTAL_*: %w", err)
	}
	return nil
}

// ConfigFromEnv reads the configuration; it fails on values that do not
// parse, naming each variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	errs := []error{svcmain.ParseEnv(getenv, &c)}
	for _, v := range strings.Split(getenv("B24HUB_INGRESS_TRUSTED_PROXIES"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("B24HUB_INGRESS_TRUSTED_PROXIES: %q is not a CIDR like 10.0.0.0/8", v))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p.Masked())
	}
	return c, errors.Join(errs...)
}

// start reads the configuration, watches the portal registry and binds
// the listener. /metrics stays on the admin port, off the public one.
func start(ctx context.Context, p *svcmain.Process) (svcmain.Running, error) {
	cfg, err := ConfigFromEnv(p.Getenv)
	if err != nil {
		return svcmain.Running{}, err
	}
	reg, err := p.Portals(ctx, cfg.PortalsFile)
	if err != nil {
		return svcmain.Running{}, err
	}
	svc, err := New(cfg, Deps{NC: p.NATS, Portals: reg, Logger: p.Log})
	if err != nil {
		return svcmain.Running{}, err
	}
	return svcmain.Running{Ready: svc.Ready, Run: svc.Run, Service: svc, Attrs: []any{"addr", svc.Addr()}}, nil
}
