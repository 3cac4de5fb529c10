package main

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startNATS embeds a JetStream server storing under dataDir. It listens on
// the preferred port when free, otherwise on a random one: a Debian
// nats-server commonly holds 4222 already, and the stack must still start.
func startNATS(dataDir string, preferredPort int) (*server.Server, error) {
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
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats-server did not become ready in 15s")
	}
	return ns, nil
}
