package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// config is the local stack's own configuration; each embedded service
// also reads its own B24HUB_* variables (see the README).
type config struct {
	DataDir     string // B24HUB_DEV_DATA_DIR, default ".data"
	NATSURL     string // B24HUB_NATS_URL; empty = embed a nats-server
	NATSPort    int    // B24HUB_DEV_NATS_PORT, default 4222 (random when taken)
	PortalsFile string // B24HUB_PORTALS_FILE; empty = a demo portal
	IngressAddr string // B24HUB_INGRESS_ADDR, default 127.0.0.1:8080
	AdminAddr   string // B24HUB_ADMIN_ADDR, default 127.0.0.1:9090
}

func configFromEnv(getenv func(string) string) (config, error) {
	c := config{DataDir: ".data", NATSURL: getenv("B24HUB_NATS_URL"), NATSPort: 4222,
		PortalsFile: getenv("B24HUB_PORTALS_FILE"), IngressAddr: "127.0.0.1:8080", AdminAddr: "127.0.0.1:9090"}
	if v := getenv("B24HUB_DEV_DATA_DIR"); v != "" {
		c.DataDir = v
	}
	if v := getenv("B24HUB_INGRESS_ADDR"); v != "" {
		c.IngressAddr = v
	}
	if v := getenv("B24HUB_ADMIN_ADDR"); v != "" {
		c.AdminAddr = v
	}
	if v := getenv("B24HUB_DEV_NATS_PORT"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < -1 || p > 65535 {
			return c, fmt.Errorf("B24HUB_DEV_NATS_PORT=%q: want a port number (or -1 for random)", v)
		}
		c.NATSPort = p
	}
	return c, nil
}

// overlayEnv lets the stack pass its chosen defaults to services that read
// their own environment, without overriding what the user set.
func overlayEnv(getenv func(string) string, defaults map[string]string) func(string) string {
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return defaults[k]
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, "usage: devstack\n\nRuns the whole b24hub system locally in one process. Configure with B24HUB_* environment variables (see README.md).")
		return nil
	}
	cfg, err := configFromEnv(getenv)
	if err != nil {
		return err
	}
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), "devstack")
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	tel, err := telemetry.Setup(ctx, "b24hub-devstack", getenv)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, tel.Shutdown(sctx))
	}()

	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := startNATS(cfg.DataDir, cfg.NATSPort)
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		natsURL = ns.ClientURL()
	}
	nc, err := nats.Connect(natsURL, nats.Name("b24hub-devstack"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		return err
	}

	reg := portals.NewRegistry()
	var demo *demoPortal
	if cfg.PortalsFile == "" {
		if demo, err = ensureDemoPortal(cfg.DataDir); err != nil {
			return err
		}
		cfg.PortalsFile = demo.File
	}
	if err := reg.LoadFile(cfg.PortalsFile); err != nil {
		return err
	}
	go reg.WatchFile(ctx, cfg.PortalsFile, 2*time.Second, log)
	kv, err := js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		return err
	}
	if err := reg.WatchKV(ctx, kv, log); err != nil {
		return err
	}

	env := overlayEnv(getenv, map[string]string{"B24HUB_INGRESS_ADDR": cfg.IngressAddr})
	icfg, err := ingress.ConfigFromEnv(env)
	if err != nil {
		return err
	}
	ing, err := ingress.New(icfg, ingress.Deps{NC: nc, Portals: reg, Logger: log.With("service", "ingress"), Metrics: tel.MetricsHandler()})
	if err != nil {
		return fmt.Errorf("%w (set B24HUB_INGRESS_ADDR to a free address)", err)
	}

	health := telemetry.NewHealth(map[string]telemetry.ReadyFunc{"ingress": ing.Ready})
	mux := http.NewServeMux()
	health.Register(mux, tel.MetricsHandler())
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w (set B24HUB_ADMIN_ADDR to a free address)", cfg.AdminAddr, err)
	}
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ing.Run(gctx) })
	g.Go(func() error {
		go func() { <-gctx.Done(); _ = admin.Shutdown(context.WithoutCancel(gctx)) }()
		if err := admin.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})

	printBanner(stdout, natsURL, "http://"+ing.Addr(), "http://"+adminLn.Addr().String(), cfg.PortalsFile, demo)
	log.InfoContext(ctx, "b24hub local stack running", "nats", natsURL, "ingress", ing.Addr())
	if err := g.Wait(); err != nil {
		return err
	}
	return nc.Drain()
}

func printBanner(w io.Writer, natsURL, ingressURL, adminURL, portalsFile string, demo *demoPortal) {
	fmt.Fprintf(w, "\nb24hub local stack is up\n")
	fmt.Fprintf(w, "  NATS JetStream: %s\n", natsURL)
	fmt.Fprintf(w, "  ingress:        %s/bitrix24/events\n", ingressURL)
	fmt.Fprintf(w, "  admin:          %s/healthz  /readyz  /metrics\n", adminURL)
	fmt.Fprintf(w, "  portals file:   %s\n", portalsFile)
	if demo != nil {
		fmt.Fprintf(w, "\nTry it: post a real ONCRMDEALUPDATE for the demo portal:\n\n  %s\n\n", demo.Curl(ingressURL))
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// demoPortal is created when no portals file is configured, so a new user
// can post an event straight away.
type demoPortal struct {
	File     string
	MemberID string
	Token    string
	Domain   string
}

func ensureDemoPortal(dataDir string) (*demoPortal, error) {
	path := filepath.Join(dataDir, "demo-portals.yaml")
	if data, err := os.ReadFile(path); err == nil {
		ps, err := portals.ParseFile(data)
		if err == nil && len(ps) == 1 {
			tok, err := os.ReadFile(filepath.Join(dataDir, "demo-token"))
			if err == nil {
				return &demoPortal{File: path, MemberID: ps[0].MemberID, Token: string(tok), Domain: ps[0].Domain}, nil
			}
		}
	}
	d := &demoPortal{File: path, MemberID: randomHex(16), Token: randomHex(16), Domain: "demo.bitrix24.com"}
	yaml := fmt.Sprintf("# Created by the local stack: a demo portal. Point B24HUB_PORTALS_FILE at your own file.\nportals:\n  - member_id: %s\n    application_token: %s\n    domain: %s\n", d.MemberID, d.Token, d.Domain)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dataDir, "demo-token"), []byte(d.Token), 0o600); err != nil {
		return nil, err
	}
	return d, nil
}

// DealUpdateBody is a real ONCRMDEALUPDATE body as Bitrix24 sends it (form
// encoded, PHP brackets, the field order of the documented example).
func (d *demoPortal) DealUpdateBody(dealID string, ts int64) string {
	return "event=ONCRMDEALUPDATE&event_handler_id=201&data%5BFIELDS%5D%5BID%5D=" + dealID +
		"&ts=" + strconv.FormatInt(ts, 10) +
		"&auth%5Baccess_token%5D=s6p6eclrvim6da22ft9ch94ekreb52lv&auth%5Bexpires_in%5D=3600&auth%5Bscope%5D=crm" +
		"&auth%5Bdomain%5D=" + d.Domain +
		"&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F&auth%5Bstatus%5D=F" +
		"&auth%5Bclient_endpoint%5D=https%3A%2F%2F" + d.Domain + "%2Frest%2F" +
		"&auth%5Bmember_id%5D=" + d.MemberID +
		"&auth%5Brefresh_token%5D=4s386p3q0tr8dy89xvmt96234v3dljg8" +
		"&auth%5Bapplication_token%5D=" + d.Token
}

// Curl is a ready-to-paste command posting DealUpdateBody.
func (d *demoPortal) Curl(ingressURL string) string {
	return fmt.Sprintf("curl -sS -X POST %s/bitrix24/events -H 'Content-Type: application/x-www-form-urlencoded' --data '%s'",
		ingressURL, d.DealUpdateBody("759", time.Now().Unix()))
}
