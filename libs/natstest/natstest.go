// Package natstest runs a real, embedded nats-server with JetStream for tests.
// It lives in its own module so production modules never link nats-server.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is an embedded JetStream server bound to a random loopback port
// with its store in a test temp dir.
type Server struct {
	*server.Server
	opts *server.Options
	t    testing.TB
}

// Start runs a JetStream server for the life of t. It fails t if the server
// does not become ready within ten seconds.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	opts := &server.Options{
		ServerName: "natstest",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	}
	s := &Server{opts: opts, t: t}
	s.start()
	// Port is fixed after the first start so Restart keeps the address.
	opts.Port = s.Addr().(*net.TCPAddr).Port
	// Registered after TempDir: cleanups run LIFO, so the server stops before
	// its store is removed.
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	ns, err := server.NewServer(s.opts)
	if err != nil {
		s.t.Fatalf("natstest: new server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		s.t.Fatalf("natstest: server not ready")
	}
	s.Server = ns
}

// Stop shuts the server down hard (like a crashed broker) and waits for it.
// It is safe to call more than once.
func (s *Server) Stop() {
	if s.Server == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart starts the server again on the same port with the same store, so
// clients reconnect and stored messages survive.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// URL is the client URL, stable across Restart.
func (s *Server) URL() string { return s.ClientURL() }

// Connect returns a client that reconnects forever; it is drained when t ends.
func (s *Server) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(s.URL(), opts...)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a connected JetStream context.
func (s *Server) JetStream(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := s.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}
