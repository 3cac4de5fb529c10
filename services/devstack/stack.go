package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/eventbus/natsauth"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/catalog"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DemoAppClientID is the client id of the local stack's demo application
// (its secret is generated into the data directory), used when
// B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET are not set.
const DemoAppClientID = "local.b24hub.demo"

// stack is every component of the local system, built in dependency order.
type stack struct {
	natsURL string
	// replicas of every stream and bucket (B24HUB_NATS_REPLICAS).
	replicas int
	ns       *server.Server // nil when B24HUB_NATS_URL is used or with a cluster
	// cluster are the embedded nodes with B24HUB_DEV_NATS_CLUSTER > 1.
	cluster []*server.Server
	// ids are the embedded server's identities; nil when
	// B24HUB_NATS_URL is used.
	ids *identities
	// nc and js are the stack's own: it provisions the topology and
	// watches the portals it prints, as the topology admin
	// (svcdecl.AdminUser) on the embedded server.
	nc *nats.Conn
	js jetstream.JetStream
	// conns are the services' connections, one each.
	conns []*nats.Conn
	// watches stop each connection's eventbus.ServerWatch.
	watches []func()
	pool    *pgxpool.Pool
	db      stackDatabase
	dataDir string
	reg     *portals.Registry
	demo    *demoPortal // nil with a user portals file
	fake    *fakeportal.Portal

	// running are the catalog's services, started, by name; the banner
	// and the tests also reach the ingress's address and the monitor's
	// token.
	running      map[string]svcmain.Running
	ingress      *ingress.Service
	monitor      *monitor.Service
	portalsFile  string
	watchPortals func(ctx context.Context) error
}

func build(ctx context.Context, cfg config, getenv func(string) string, log *slog.Logger, tel *telemetry.Telemetry) (_ *stack, err error) {
	st := &stack{natsURL: cfg.NATSURL, dataDir: cfg.DataDir, replicas: cfg.NATSReplicas}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	if st.natsURL == "" {
		// Authorization on: every service, b24ctl and the stack itself
		// connect with their own identity, so the local stack and its tests
		// exercise the permissions the declarations derive.
		if st.ids, err = loadIdentities(identitiesDir(cfg.DataDir), cfg.harness); err != nil {
			return nil, err
		}
		if cfg.NATSCluster > 1 {
			if st.cluster, err = startNATSCluster(cfg.DataDir, cfg.NATSCluster, cfg.NATSPort, st.ids.users(), log); err != nil {
				return nil, err
			}
			st.natsURL = clientURLs(st.cluster)
		} else {
			if st.ns, err = startNATS(cfg.DataDir, cfg.NATSPort, st.ids.users(), log); err != nil {
				return nil, err
			}
			st.natsURL = st.ns.ClientURL()
		}
		// The stack provisions the topology as the topology Job does.
		st.nc, err = st.ids.connect(st.natsURL, svcdecl.AdminUser)
	} else {
		// An external server: the B24HUB_NATS_* settings are the one
		// identity of the stack and of every service.
		var auth natsauth.Config
		if auth, err = natsauth.FromEnv(getenv); err == nil {
			auth.URL = st.natsURL
			st.nc, _, err = auth.Connect(nats.Name("b24hub-devstack"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
		}
	}
	if err != nil {
		return nil, err
	}
	if st.js, err = jetstream.New(st.nc); err != nil {
		return nil, err
	}
	// The local stack is the one owner of the topology here. Against a
	// cluster the streams and buckets get the production overlay's replicas.
	if err := provision(ctx, st.js, cfg.NATSReplicas); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st.db = stackDatabase{URL: cfg.DatabaseURL}
	if cfg.DatabaseURL == "" {
		if st.db, err = ownedDatabase(pctx, postgres.DefaultURL, cfg.DataDir, log); err != nil {
			return nil, err
		}
	}
	st.pool, err = postgres.Open(pctx, withPoolSize(st.db.URL, 20), true)
	if err != nil {
		return nil, fmt.Errorf("%w\n  the local stack needs PostgreSQL: start it, or set B24HUB_DATABASE_URL", err)
	}

	// Portals: the user's file, or a demo portal served by an embedded fake
	// Bitrix24 whose events are pushed to this stack's ingress.
	st.portalsFile = cfg.PortalsFile
	if st.portalsFile == "" {
		if st.demo, err = loadDemoPortal(cfg.DataDir); err != nil {
			return nil, err
		}
		if st.fake, err = startDemoFake(cfg.FakeAddr, st.demo); err != nil {
			return nil, err
		}
		if err := st.demo.writePortalsFile(st.fake); err != nil {
			return nil, err
		}
		st.portalsFile = st.demo.File
	}
	st.reg = portals.NewRegistry()
	if err := st.reg.LoadFile(st.portalsFile); err != nil {
		return nil, err
	}
	kvPortals, err := st.js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		return nil, err
	}
	if err := st.reg.WatchKV(ctx, kvPortals, log); err != nil {
		return nil, err
	}
	st.watchPortals = func(ctx context.Context) error {
		st.reg.WatchFile(ctx, st.portalsFile, 2*time.Second, log)
		return nil
	}

	credKey, err := secretFile(cfg.DataDir, "credentials.key", func() string { return base64.StdEncoding.EncodeToString(randomBytes(32)) })
	if err != nil {
		return nil, err
	}
	monitorToken, err := secretFile(cfg.DataDir, "monitor-token", func() string { return randomHex(24) })
	if err != nil {
		return nil, err
	}
	defaults := map[string]string{
		"B24HUB_INGRESS_ADDR":    cfg.IngressAddr,
		"B24HUB_MONITOR_ADDR":    cfg.MonitorAddr,
		"B24HUB_MONITOR_TOKEN":   monitorToken,
		"B24HUB_PORTALS_FILE":    st.portalsFile,
		"B24HUB_DATABASE_URL":    st.db.URL,
		"B24HUB_CREDENTIALS_KEY": credKey,
		"B24HUB_HANDLER_URL":     "http://" + cfg.IngressAddr,
	}
	if st.fake != nil {
		defaults["B24HUB_INSTALL_ALLOWED_HOSTS"] = hostOf(st.fake.URL())
	}
	// Installs are refused unless the application is configured (the
	// verification would fail open), so the local stack has a demo app of
	// its own unless the user configures theirs.
	if getenv("B24HUB_APP_CLIENT_ID") == "" && getenv("B24HUB_APP_CLIENT_SECRET") == "" && getenv("B24HUB_APP_CLIENT_SECRET_FILE") == "" {
		appSecret, err := secretFile(cfg.DataDir, "app-client-secret", func() string { return randomHex(24) })
		if err != nil {
			return nil, err
		}
		defaults["B24HUB_APP_CLIENT_ID"] = DemoAppClientID
		defaults["B24HUB_APP_CLIENT_SECRET"] = appSecret
	}
	env := overlayEnv(getenv, defaults)

	// Every service in the catalog starts as its command starts it
	// (svcmain.Service.StartIn: migrate the declared schema, then Start),
	// here sharing one pool. Each has a NATS connection of its own, as its
	// own identity on the embedded server (svcmain.ConnectNATS with its
	// nkey seed), and watches the portal registry on it: what its
	// declaration does not allow fails here as it would in production.
	// Adding a service to services/catalog is all it takes to run it here.
	st.running = map[string]svcmain.Running{}
	for _, svc := range catalog.Services {
		name := svc.Declaration.Name
		senv := env
		if st.ids != nil {
			senv = st.ids.serviceEnv(env, st.natsURL, name)
		}
		nc, _, err := svcmain.ConnectNATS(name, senv, nats.ReconnectWait(250*time.Millisecond))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		st.conns = append(st.conns, nc)
		// As svcmain.Open does: off a NATS server cut off from the
		// JetStream cluster (with B24HUB_DEV_NATS_CLUSTER or a cluster's
		// URLs).
		st.watches = append(st.watches, eventbus.ServerWatch{Log: log.With("service", name)}.Start(nc))
		p := &svcmain.Process{Name: name, Log: log.With("service", name), Telemetry: tel, NATS: nc,
			Getenv: senv, Stdout: io.Discard}
		if svc.Declaration.Database != nil {
			p.Pool = st.pool
		}
		r, err := svc.StartIn(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		st.running[name] = r
		switch v := r.Service.(type) {
		case *ingress.Service:
			st.ingress = v
			// The bound address (a :0 port is resolved only now) is what
			// portals push to, and what the services after it are told.
			defaults["B24HUB_HANDLER_URL"] = "http://" + v.Addr()
			if st.fake != nil {
				st.demo.connect(st.fake, "http://"+v.Addr()+"/bitrix24/events")
			}
		case *monitor.Service:
			st.monitor = v
		}
	}
	if st.ingress == nil || st.monitor == nil {
		return nil, errors.New("the catalog lacks the ingress or the monitor")
	}
	return st, nil
}

// runners are the long-running parts, by name: every catalog service and
// the portals file watch.
func (st *stack) runners() map[string]func(context.Context) error {
	out := map[string]func(context.Context) error{"portals-file": st.watchPortals}
	for name, r := range st.running {
		out[name] = r.Run
	}
	return out
}

// readiness is every catalog service's readiness check, by name.
func (st *stack) readiness() map[string]telemetry.ReadyFunc {
	out := map[string]telemetry.ReadyFunc{}
	for name, r := range st.running {
		out[name] = r.Ready
	}
	return out
}

// close releases what build acquired, in reverse order.
func (st *stack) close() {
	if st.fake != nil {
		st.fake.Close()
	}
	if st.pool != nil {
		st.pool.Close()
	}
	for _, stop := range st.watches {
		stop()
	}
	for _, nc := range st.conns {
		_ = nc.Drain()
	}
	if st.nc != nil {
		_ = st.nc.Drain()
	}
	for _, ns := range append([]*server.Server{st.ns}, st.cluster...) {
		if ns != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
		}
	}
}

func (st *stack) printBanner(w io.Writer, adminURL string) {
	ingressURL := "http://" + st.ingress.Addr()
	monitorURL := "http://" + st.monitor.Addr()
	fmt.Fprintf(w, "\nb24hub local stack is up\n")
	fmt.Fprintf(w, "  NATS JetStream: %s\n", st.natsURL)
	if len(st.cluster) > 1 {
		fmt.Fprintf(w, "                  (%d-node cluster, streams and buckets with %d replicas)\n", len(st.cluster), st.replicas)
	}
	if st.ids != nil {
		fmt.Fprintf(w, "  NATS identities: %s  (b24ctl: B24HUB_NATS_URL=%s B24HUB_NATS_NKEY=%s; `topology apply`: %s)\n",
			st.ids.dir, st.natsURL, st.ids.SeedFile(svcdecl.OperatorUser), st.ids.SeedFile(svcdecl.AdminUser))
	}
	fmt.Fprintf(w, "  ingress:        %s/bitrix24/events\n", ingressURL)
	fmt.Fprintf(w, "  monitor:        %s/  (API %s/api/v1/, token in %s)\n", monitorURL, monitorURL, "B24HUB_MONITOR_TOKEN")
	fmt.Fprintf(w, "  monitor token:  %s\n", st.monitor.Token())
	fmt.Fprintf(w, "  admin:          %s/healthz  /readyz  /metrics\n", adminURL)
	fmt.Fprintf(w, "  database:       %s\n", st.db.describe(st.dataDir))
	fmt.Fprintf(w, "  portals file:   %s\n", st.portalsFile)
	if st.fake != nil {
		fmt.Fprintf(w, "  fake Bitrix24:  %s  (demo portal %s)\n", st.fake.URL(), st.demo.MemberID)
	}
	if st.demo != nil {
		fmt.Fprintf(w, "\nTry it: post a real ONCRMDEALUPDATE for the demo portal:\n\n  %s\n\n", st.demo.Curl(ingressURL))
		if st.fake != nil {
			fmt.Fprintf(w, "Or let the fake portal edit 100 deals at once (a storm):\n\n  curl -sS -X POST '%s/_fake/scenario' -d '{\"scenario\":\"bulk-edit:100\"}'\n\n", st.fake.URL())
		}
		fmt.Fprintf(w, "Then open the dashboard: %s/?token=%s\n\n", monitorURL, st.monitor.Token())
	}
}

func withPoolSize(dsn string, n int) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	if q.Get("pool_max_conns") == "" {
		q.Set("pool_max_conns", strconv.Itoa(n))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// listenFree reports addr when it can be bound, else a random loopback port.
func listenFree(addr string) string {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "127.0.0.1:0"
	}
	_ = ln.Close()
	return addr
}

// provision creates or updates the topology. On a new cluster placing a
// replicated stream can outlast one JetStream API request's timeout (5 s)
// while its group elects a leader, on a busy machine more so (seen:
// TestDevStackCluster under go tool task test): an attempt that timed out
// is repeated, each one idempotent, for up to a minute.
func provision(ctx context.Context, js jetstream.JetStream, replicas int) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := eventbus.Provision(ctx, js, eventbus.StreamOptions{Replicas: replicas})
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
