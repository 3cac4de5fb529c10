// Package subscriptions is the b24hub subscriptions service: it keeps every
// portal's event.bind set equal to the declared one, verifies and registers
// app installs, pulls offline events, reconciles by polling so that pushes
// Bitrix24 dropped are recovered, and runs the synthetic event.test probe.
//
// Install verification and the b24ctl control subjects are answered by
// every replica; everything else (subscription repair, offline queues,
// reconciliation, probes and the lifecycle-event consumer) runs on one
// replica at a time, the holder of a lease in the B24_LEASES bucket.
//
// The service is embedded by the local stack (services/devstack) and run on
// its own by cmd/subscriptions.
package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/allowlist"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/subscriptions/internal/desired"
	"github.com/b24hub/b24hub/services/subscriptions/internal/install"
	"github.com/b24hub/b24hub/services/subscriptions/internal/lease"
	"github.com/b24hub/b24hub/services/subscriptions/internal/offline"
	"github.com/b24hub/b24hub/services/subscriptions/internal/probe"
	"github.com/b24hub/b24hub/services/subscriptions/internal/reconcile"
	"github.com/b24hub/b24hub/services/subscriptions/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// LeaseName is the key of the singleton lease in eventbus.BucketLeases.
const LeaseName = "subscriptions"

// Deps are what the service needs from its host process.
type Deps struct {
	// NC is the NATS connection (required).
	NC *nats.Conn
	// Pool is the PostgreSQL pool (required); the service migrates schema
	// "subscriptions".
	Pool *pgxpool.Pool
	// Portals is the portal registry (required), kept up to date by the
	// host from the portals file and the portals bucket.
	Portals *portals.Registry
	// Logger is required.
	Logger *slog.Logger
	// HTTPClient is used for every call to a portal (optional; tests point
	// it at the fake portal).
	HTTPClient *http.Client
	// MeterProvider defaults to the global one.
	MeterProvider metric.MeterProvider
}

// Service is the subscriptions service.
type Service struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	m     *metrics
	js    jetstream.JetStream
	store *store.Store
	pub   *eventbus.Publisher

	want    atomic.Pointer[desired.Set]
	clients *bitrixport.RegistryClients
	creds   *bitrix.KVTokenStore
	install *install.Verifier
	pump    *offline.Pump
	recon   *reconcile.Reconciler
	prober  *probe.Prober

	leading    atomic.Bool
	kickSync   chan string
	kickDrain  chan string
	runStarted atomic.Bool
}

// New builds the service. It validates the configuration and the desired
// subscriptions and binds the NATS buckets it needs, which must exist
// (eventbus.Provision, run by the local stack or `b24ctl topology apply`).
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.NC == nil || deps.Pool == nil || deps.Portals == nil || deps.Logger == nil {
		return nil, errors.New("subscriptions: NC, Pool, Portals and Logger are required")
	}
	if deps.MeterProvider == nil {
		deps.MeterProvider = otel.GetMeterProvider()
	}
	m, err := newMetrics(deps.MeterProvider.Meter(instrumentation))
	if err != nil {
		return nil, fmt.Errorf("subscriptions: metrics: %w", err)
	}
	want, err := desired.Load(cfg.SubscriptionsFile, handlerURL(cfg.HandlerURL))
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	allow, err := allowlist.New(cfg.AllowedHosts)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: B24HUB_INSTALL_ALLOWED_HOSTS: %w", err)
	}
	js, err := jetstream.New(deps.NC)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Installs are stored where, and how, every consumer reads them.
	creds, err := bitrixport.SharedTokens(ctx, js, cfg.App())
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	kvPortals, err := js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: bucket %s: %w (run `b24ctl topology apply`)", eventbus.BucketPortals, err)
	}
	// Every replica and service calling a portal shares its leaky bucket
	// (§4.5), so the limiter state lives in NATS KV.
	limiter, err := bitrixport.SharedLimiter(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	st := store.New(deps.Pool)
	pub := eventbus.NewPublisher(js)
	s := &Service{
		cfg: cfg, deps: deps, log: deps.Logger, m: m, js: js, store: st, pub: pub,
		creds:     creds,
		pump:      offline.New(pub, st),
		recon:     reconcile.New(reconcile.Config{Overlap: cfg.ReconcileOverlap, InitialLookback: cfg.ReconcileLookback}, pub, st),
		prober:    probe.New(st),
		kickSync:  make(chan string, 256),
		kickDrain: make(chan string, 256),
	}
	s.want.Store(want)
	// The same per-portal clients as every consumer (bitrixport), on the
	// token store the installs are written to.
	opts := []bitrix.Option{bitrix.WithLimiter(limiter), bitrix.WithLogger(deps.Logger), bitrix.WithAllowedHosts(allow)}
	if deps.HTTPClient != nil {
		opts = append(opts, bitrix.WithHTTPClient(deps.HTTPClient))
	}
	if cfg.App().CanRefresh() {
		s.clients, err = bitrixport.NewOAuthRegistryClients(deps.Portals,
			bitrixport.OAuthApp{ClientID: cfg.AppClientID, ClientSecret: cfg.AppClientSecret, Tokens: s.creds}, opts...)
		if err != nil {
			return nil, fmt.Errorf("subscriptions: %w", err)
		}
	} else {
		// Installed portals are then left out of binding, offline events,
		// probes and reconciliation: say so once rather than per portal.
		deps.Logger.WarnContext(ctx, "installed portals cannot be called: B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET are not set")
		s.clients = bitrixport.NewRegistryClients(deps.Portals, opts...)
	}
	s.install, err = install.New(install.Config{AllowList: allow, ClientID: cfg.AppClientID, ClientSecret: cfg.AppClientSecret, Timeout: cfg.InstallTimeout,
		HTTPClient: deps.HTTPClient}, s.creds, kvRecords{kvPortals}, deps.Portals, st, deps.Logger)
	if err != nil {
		return nil, err
	}
	if !s.install.Configured() {
		deps.Logger.Warn("ONAPPINSTALL will be refused: B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET are not set, so an install's member_id cannot be confirmed")
	}
	s.install.OnInstalled = func(memberID string) {
		// The new credentials replace any cached client; the leader also
		// re-binds when the ONAPPINSTALL reaches the raw stream.
		s.clients.Forget(memberID)
		s.kick(s.kickSync, memberID)
	}
	return s, nil
}

func handlerURL(base string) string {
	if base == "" {
		return ""
	}
	return base + "/bitrix24/events"
}

// kvRecords writes portal records to the portals bucket.
type kvRecords struct{ kv jetstream.KeyValue }

func (k kvRecords) Put(ctx context.Context, rec portals.Installed) error {
	return portals.PutInstalled(ctx, k.kv, rec)
}

// Ready reports whether PostgreSQL and JetStream are usable.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return eventbus.CheckStreams(ctx, s.js, eventbus.StreamEvents)
}

// Leading reports whether this instance holds the singleton lease.
func (s *Service) Leading() bool { return s.leading.Load() }

// Run migrates the schema, answers install verifications and control
// requests, and contends for the lease that runs the singleton loops, until
// ctx ends. It returns after the loops stopped and the lease was released.
func (s *Service) Run(ctx context.Context) error {
	if !s.runStarted.CompareAndSwap(false, true) {
		return errors.New("subscriptions: Run called twice")
	}
	if err := store.Migrate(ctx, s.deps.Pool); err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	// Concurrent verifications are bounded, and a reinstall of a portal we
	// know (its application token matches) has slots of its own, so a
	// flood of forged installs cannot lock a real portal out.
	known, unknown := make(chan struct{}, knownInstallSlots), make(chan struct{}, unknownInstallSlots)
	installSub, err := s.deps.NC.QueueSubscribe(eventbus.ControlInstall, "subscriptions", func(m *nats.Msg) {
		var req eventbus.InstallRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			s.respondInstall(m, eventbus.InstallReply{Reason: "bad request"})
			return
		}
		sem := unknown
		if s.install.Known(req) {
			sem = known
		}
		select {
		case sem <- struct{}{}:
		default:
			s.m.installs.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "busy")))
			s.respondInstall(m, eventbus.InstallReply{Busy: true, Reason: "busy, retry"})
			return
		}
		go func() {
			defer func() { <-sem }()
			s.answerInstall(ctx, m, req)
		}()
	})
	if err != nil {
		return fmt.Errorf("subscriptions: subscribe %s: %w", eventbus.ControlInstall, err)
	}
	subs, err := s.subscribeControl(ctx)
	subs = append(subs, installSub)
	defer func() {
		for _, sub := range subs {
			_ = sub.Drain()
		}
	}()
	if err != nil {
		return err
	}
	kvLeases, err := s.js.KeyValue(ctx, eventbus.BucketLeases)
	if err != nil {
		return fmt.Errorf("subscriptions: bucket %s: %w (run `b24ctl topology apply`)", eventbus.BucketLeases, err)
	}
	l, err := lease.New(kvLeases, LeaseName, s.cfg.InstanceID, s.cfg.LeaseTTL, s.log)
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "subscriptions service running", "config", s.cfg.String())
	return l.Run(ctx, s.lead)
}

// Verification slots: installs of portals not known yet (any of them may
// be forged), and reinstalls of portals whose application token matches.
const (
	unknownInstallSlots = 12
	knownInstallSlots   = 4
)

func (s *Service) answerInstall(ctx context.Context, m *nats.Msg, req eventbus.InstallRequest) {
	vctx, cancel := context.WithTimeout(ctx, s.cfg.InstallTimeout+time.Second)
	rep := s.install.Handle(vctx, req)
	cancel()
	result := "refused"
	if rep.Accepted {
		result = "accepted"
	}
	s.m.installs.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	s.respondInstall(m, rep)
}

func (s *Service) respondInstall(m *nats.Msg, rep eventbus.InstallReply) {
	b, _ := json.Marshal(rep)
	_ = m.Respond(b)
}

// kick asks a leader loop to handle memberID soon; it never blocks (a full
// queue means the loop is busy and the timer covers it).
func (s *Service) kick(ch chan string, memberID string) {
	select {
	case ch <- memberID:
	default:
	}
}

func (s *Service) desired() *desired.Set { return s.want.Load() }

// reloadDesired re-reads the subscriptions file, keeping the last good set
// on error.
func (s *Service) reloadDesired(ctx context.Context) {
	if s.cfg.SubscriptionsFile == "" {
		return
	}
	set, err := desired.Load(s.cfg.SubscriptionsFile, handlerURL(s.cfg.HandlerURL))
	if err != nil {
		s.log.ErrorContext(ctx, "subscriptions file invalid; keeping the last good one", "error", err)
		return
	}
	s.want.Store(set)
}

// appPortals are the active installed portals with stored credentials:
// the ones event.bind, offline events and event.test work for.
func (s *Service) appPortals(ctx context.Context) []string {
	var out []string
	for _, p := range s.deps.Portals.All() {
		if p.Source == portals.SourceInstall && p.Active && s.clients.AppInstalled(ctx, p.MemberID) {
			out = append(out, p.MemberID)
		}
	}
	slices.Sort(out)
	return out
}

// restPortals are the active portals b24hub can call (webhook or app).
func (s *Service) restPortals(ctx context.Context) []portals.Portal {
	var out []portals.Portal
	for _, p := range s.deps.Portals.All() {
		if !p.Active {
			continue
		}
		if p.WebhookURL != "" || s.clients.AppInstalled(ctx, p.MemberID) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b portals.Portal) int {
		if a.MemberID < b.MemberID {
			return -1
		}
		if a.MemberID > b.MemberID {
			return 1
		}
		return 0
	})
	return out
}

func (s *Service) recordSync(ctx context.Context, memberID string, drift, repaired int, err error) {
	st := store.SyncStatus{MemberID: memberID, CheckedAt: time.Now(), Drift: drift, Repaired: repaired}
	if err != nil {
		st.Error = err.Error()
	}
	if rerr := s.store.RecordSync(ctx, st); rerr != nil {
		s.log.WarnContext(ctx, "record sync status", "member_id", memberID, "error", rerr)
	}
}
