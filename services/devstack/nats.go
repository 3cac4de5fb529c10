package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startNATS embeds a JetStream server storing under dataDir. It listens on
// the preferred port when free, otherwise on a random one: a Debian
// nats-server commonly holds 4222 already, and the stack must still start.
// Authorization is on: only users connect, each with its permissions; a
// publish or subscription the server refuses, or a refused connection, is
// logged on log as an error with the message ViolationLog.
func startNATS(dataDir string, preferredPort int, users []*server.NkeyUser, log *slog.Logger) (*server.Server, error) {
	port := preferredPort
	if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
		port = -1
	} else {
		_ = ln.Close()
	}
	opts := &server.Options{
		ServerName: "b24hub-devstack",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		// A limit the streams' reservations are checked against, not an
		// allocation: B24_EVENTS alone reserves its 8 GiB cap
		// (eventbus.DefaultEventsMaxBytes); files grow as written.
		JetStreamMaxStore: 16 << 30,
		NoSigs:            true,
		NoLog:             true,
		Nkeys:             users,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	ns.SetLoggerV2(violationLogger{log}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats-server did not become ready in 15s")
	}
	return ns, nil
}

// startNATSCluster embeds an n-node JetStream cluster on loopback, as
// production runs NATS (three nodes, streams with three replicas): node i
// stores under dataDir/nats-cluster/n<i> and takes the client port
// preferredPort+i-1 when free (a random one otherwise); route ports are
// random. Authorization is on as in startNATS, on every node. It returns
// the running nodes once JetStream has a meta leader, or shuts down what it
// started.
func startNATSCluster(dataDir string, n, preferredPort int, users []*server.NkeyUser, log *slog.Logger) (_ []*server.Server, err error) {
	routes := make([]string, n)
	routePorts := make([]int, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		routePorts[i] = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		routes[i] = "nats-route://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(routePorts[i]))
	}
	var nodes []*server.Server
	defer func() {
		if err != nil {
			for _, ns := range nodes {
				ns.Shutdown()
			}
		}
	}()
	for i := range n {
		port := -1
		if preferredPort > 0 {
			port = preferredPort + i
			if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
				port = -1
			} else {
				_ = ln.Close()
			}
		}
		var others []string
		for j := range n {
			if j != i {
				others = append(others, routes[j])
			}
		}
		name := fmt.Sprintf("n%d", i+1)
		opts := &server.Options{
			ServerName:        name,
			Host:              "127.0.0.1",
			Port:              port,
			JetStream:         true,
			StoreDir:          filepath.Join(dataDir, "nats-cluster", name),
			JetStreamMaxStore: 16 << 30,
			Cluster:           server.ClusterOpts{Name: "b24hub-devstack", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:            server.RoutesFromStr(strings.Join(others, ",")),
			NoSigs:            true,
			NoLog:             true,
			Nkeys:             users,
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server %s: %w", name, err)
		}
		ns.SetLoggerV2(violationLogger{log}, false, false, false)
		go ns.Start()
		nodes = append(nodes, ns)
	}
	for _, ns := range nodes {
		if !ns.ReadyForConnections(15 * time.Second) {
			return nil, fmt.Errorf("embedded nats-server %s did not become ready in 15s", ns.Name())
		}
	}
	// JetStream answers once the nodes elected a meta leader.
	deadline := time.Now().Add(30 * time.Second)
	for _, ns := range nodes {
		for ns.Healthz(&server.HealthzOptions{JSMetaOnly: true}).Status != "ok" {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("embedded NATS cluster: %s reached no JetStream meta leader in 30s", ns.Name())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes, nil
}

// clientURLs joins the nodes' client URLs with commas, as nats.Connect and
// B24HUB_NATS_URL take a cluster.
func clientURLs(nodes []*server.Server) string {
	urls := make([]string, len(nodes))
	for i, ns := range nodes {
		urls[i] = ns.ClientURL()
	}
	return strings.Join(urls, ",")
}

// ViolationLog is the message of the stack's log line for a refusal by
// the embedded server's authorization: the whole-stack tests fail on it.
const ViolationLog = "NATS refused a client"

// violationLogger passes the server's authorization refusals to the
// stack's log and drops the rest of its logging.
type violationLogger struct{ log *slog.Logger }

func (l violationLogger) Noticef(string, ...any) {}
func (l violationLogger) Warnf(string, ...any)   {}
func (l violationLogger) Fatalf(string, ...any)  {}
func (l violationLogger) Debugf(string, ...any)  {}
func (l violationLogger) Tracef(string, ...any)  {}

func (l violationLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "Violation") || strings.Contains(msg, "Authorization Error") {
		l.log.Error(ViolationLog, "server", msg)
	}
}
