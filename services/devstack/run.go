package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/telemetry"
	"golang.org/x/sync/errgroup"
)

// config is the local stack's own configuration; each embedded service
// also reads its own B24HUB_* variables (see the README), with the local
// defaults below filled in where the user set nothing.
type config struct {
	DataDir     string // B24HUB_DEV_DATA_DIR, default ".data"
	NATSURL     string // B24HUB_NATS_URL (a comma-separated list for a cluster); empty = embed a nats-server
	NATSPort    int    // B24HUB_DEV_NATS_PORT, default 4222 (random when taken)
	DatabaseURL string // B24HUB_DATABASE_URL; empty = a database owned by DataDir on the local server (see database.go)
	PortalsFile string // B24HUB_PORTALS_FILE; empty = the demo portal on an embedded fake Bitrix24
	IngressAddr string // B24HUB_INGRESS_ADDR, default 127.0.0.1:8080
	MonitorAddr string // B24HUB_MONITOR_ADDR, default 127.0.0.1:8081
	AdminAddr   string // B24HUB_ADMIN_ADDR, default 127.0.0.1:9090
	FakeAddr    string // B24HUB_DEV_FAKE_ADDR, default 127.0.0.1:8090 (random when taken)

	// NATSCluster is B24HUB_DEV_NATS_CLUSTER: embed a cluster of this many
	// nodes (client ports NATSPort, NATSPort+1, …) instead of one server;
	// default 1 (one server).
	NATSCluster int
	// NATSReplicas is B24HUB_NATS_REPLICAS: the replicas of every stream
	// and bucket the stack provisions (1..5); default the embedded
	// cluster's size, 1 with one server or B24HUB_NATS_URL.
	NATSReplicas int
	// harness adds the tests' identity (HarnessUser) to the embedded
	// server; no environment variable sets it.
	harness bool
}

func configFromEnv(getenv func(string) string) (config, error) {
	c := config{DataDir: ".data", NATSURL: getenv("B24HUB_NATS_URL"), NATSPort: 4222, NATSCluster: 1,
		PortalsFile: getenv("B24HUB_PORTALS_FILE"),
		IngressAddr: "127.0.0.1:8080", MonitorAddr: "127.0.0.1:8081", AdminAddr: "127.0.0.1:9090", FakeAddr: "127.0.0.1:8090"}
	for env, dst := range map[string]*string{
		"B24HUB_DEV_DATA_DIR": &c.DataDir, "B24HUB_DATABASE_URL": &c.DatabaseURL, "B24HUB_INGRESS_ADDR": &c.IngressAddr,
		"B24HUB_MONITOR_ADDR": &c.MonitorAddr, "B24HUB_ADMIN_ADDR": &c.AdminAddr, "B24HUB_DEV_FAKE_ADDR": &c.FakeAddr,
	} {
		if v := getenv(env); v != "" {
			*dst = v
		}
	}
	if v := getenv("B24HUB_DEV_NATS_PORT"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < -1 || p > 65535 {
			return c, fmt.Errorf("B24HUB_DEV_NATS_PORT=%q: want a port number (or -1 for random)", v)
		}
		c.NATSPort = p
	}
	if v := getenv("B24HUB_DEV_NATS_CLUSTER"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5 {
			return c, fmt.Errorf("B24HUB_DEV_NATS_CLUSTER=%q: want the number of nodes, 1..5 (3 as in production)", v)
		}
		c.NATSCluster = n
	}
	c.NATSReplicas = 1
	if c.NATSURL == "" {
		c.NATSReplicas = c.NATSCluster
	}
	if v := getenv("B24HUB_NATS_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5 {
			return c, fmt.Errorf("B24HUB_NATS_REPLICAS=%q: want 1..5", v)
		}
		c.NATSReplicas = n
	}
	if c.NATSURL == "" && c.NATSReplicas > c.NATSCluster {
		return c, fmt.Errorf("B24HUB_NATS_REPLICAS=%d needs at least as many nodes (B24HUB_DEV_NATS_CLUSTER=%d)", c.NATSReplicas, c.NATSCluster)
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
		fmt.Fprintln(stdout, "usage: devstack\n\nRuns the whole b24hub system locally in one process: embedded NATS JetStream,\nthe local PostgreSQL, every service, and a fake Bitrix24 demo portal.\nConfigure with B24HUB_* environment variables (see README.md).")
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

	st, err := build(ctx, cfg, getenv, log, tel)
	if err != nil {
		return err
	}
	defer st.close()

	mux := http.NewServeMux()
	telemetry.NewHealth(st.readiness()).Register(mux, tel.MetricsHandler())
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w (set B24HUB_ADMIN_ADDR to a free address)", cfg.AdminAddr, err)
	}
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	for name, run := range st.runners() {
		g.Go(func() error {
			// A service interrupted by shutdown (e.g. mid-migration) is not a failure.
			if err := run(gctx); err != nil && !(gctx.Err() != nil && errors.Is(err, context.Canceled)) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		go func() { <-gctx.Done(); _ = admin.Shutdown(context.WithoutCancel(gctx)) }()
		if err := admin.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})

	st.printBanner(stdout, "http://"+adminLn.Addr().String())
	log.InfoContext(ctx, "b24hub local stack running", "nats", st.natsURL, "ingress", st.ingress.Addr(), "monitor", st.monitor.Addr())
	return g.Wait()
}

// secretFile returns the content of name in dir, creating it with gen()
// on first use, so local secrets stay stable across restarts.
func secretFile(dir, name string, gen func() string) (string, error) {
	path := filepath.Join(dir, name)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	v := gen()
	if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
		return "", err
	}
	return v, nil
}
