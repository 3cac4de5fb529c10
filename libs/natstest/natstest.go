// Package natstest runs a real, embedded nats-server with JetStream for tests.
// It lives in its own module so production modules never link nats-server.
package natstest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Server is an embedded JetStream server bound to a random loopback port
// with its store in a test temp dir.
type Server struct {
	*server.Server
	opts *server.Options
	t    testing.TB
	// seeds are the nkey seeds of the identities, by user; admin is the
	// seed Connect uses when authorization is on.
	seeds map[string][]byte
	admin []byte
}

// Option changes how Start configures the server.
type Option func(*Server)

// Identity is a NATS user and what it may publish and subscribe to. It has
// the fields of svcdecl.Permissions, so a declaration's permissions convert
// to it (natstest.Identity(p)) without this module depending on the
// declarations.
type Identity struct {
	// User is the name ConnectAs and SeedFile take.
	User string
	// Publish and Subscribe are the allowed subjects; nothing else is.
	Publish   []string
	Subscribe []string
	// AllowResponses lets it answer the requests it receives.
	AllowResponses bool
}

// WithIdentities turns authorization on: each identity becomes an nkey user
// with exactly its permissions, reached with ConnectAs or SeedFile.
// Connect and JetStream then use one more user allowed everything, so a
// test sets up streams and observes as before.
func WithIdentities(ids ...Identity) Option {
	return func(s *Server) {
		s.seeds = map[string][]byte{}
		users := make([]*server.NkeyUser, 0, len(ids)+1)
		for _, id := range ids {
			seed, pub := newUser(s.t)
			s.seeds[id.User] = seed
			users = append(users, &server.NkeyUser{Nkey: pub, Permissions: ServerPermissions(id)})
		}
		var pub string
		s.admin, pub = newUser(s.t)
		s.opts.Nkeys = append(users, &server.NkeyUser{Nkey: pub})
	}
}

// ServerPermissions is the nats-server permissions block of an identity.
func ServerPermissions(p Identity) *server.Permissions {
	sp := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.Publish},
		Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
	}
	if p.AllowResponses {
		sp.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
	}
	return sp
}

func newUser(t testing.TB) (seed []byte, pub string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("natstest: nkey: %v", err)
	}
	seed, _ = kp.Seed()
	pub, _ = kp.PublicKey()
	return seed, pub
}

// Start runs a JetStream server for the life of t. It fails t if the server
// does not become ready within ten seconds.
func Start(t testing.TB, options ...Option) *Server {
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
	for _, o := range options {
		o(s)
	}
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
	if !ns.ReadyForConnections(time.Minute) {
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

// Connect returns a client that reconnects forever; it is drained when t
// ends. With WithIdentities it connects as a user allowed everything.
func (s *Server) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	if s.admin != nil {
		opts = append([]nats.Option{nkeyOption(t, s.admin)}, opts...)
	}
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

// SeedFile writes the nkey seed of the identity user (WithIdentities) to a
// file in a temp dir of t and returns its path: what B24HUB_NATS_NKEY
// names. It fails t for an unknown user.
func (s *Server) SeedFile(t testing.TB, user string) string {
	t.Helper()
	seed, ok := s.seeds[user]
	if !ok {
		t.Fatalf("natstest: no identity %q (WithIdentities)", user)
	}
	path := filepath.Join(t.TempDir(), user+".nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return path
}

// ConnectAs connects as the identity user (WithIdentities) with its inbox
// prefix _INBOX.<user>, as the service itself would; the connection
// reconnects forever and is closed when t ends.
func (s *Server) ConnectAs(t testing.TB, user string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	seed, ok := s.seeds[user]
	if !ok {
		t.Fatalf("natstest: no identity %q (WithIdentities)", user)
	}
	opts = append([]nats.Option{nkeyOption(t, seed), nats.CustomInboxPrefix("_INBOX." + user),
		nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(s.URL(), opts...)
	if err != nil {
		t.Fatalf("natstest: connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func nkeyOption(t testing.TB, seed []byte) nats.Option {
	t.Helper()
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatalf("natstest: seed: %v", err)
	}
	pub, _ := kp.PublicKey()
	return nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) })
}
