package natsauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus/natsauth"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

func write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", -1, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	return s
}

// Each way of authenticating the nats CLI knows connects to a server that
// requires it, and the same server refuses the connection without it.
func TestConnectAuthenticates(t *testing.T) {
	userKP, _ := nkeys.CreateUser()
	seed, _ := userKP.Seed()
	pub, _ := userKP.PublicKey()
	nkeySrv := start(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	pwSrv := start(t, &server.Options{Users: []*server.User{{Username: "svc", Password: "s3cret"}}})
	credsSrv, creds := operatorServer(t)
	caFile, tlsSrv := tlsServer(t)
	ctxFile := write(t, "svc.json", mustJSON(t, map[string]string{"url": nkeySrv.ClientURL(), "nkey": write(t, "svc.nk", seed), "description": "x"}))

	tests := []struct {
		name string
		env  map[string]string
	}{
		{"nkey seed", map[string]string{"B24HUB_NATS_URL": nkeySrv.ClientURL(), "B24HUB_NATS_NKEY": write(t, "seed.nk", seed)}},
		{"user and password", map[string]string{"B24HUB_NATS_URL": pwSrv.ClientURL(), "B24HUB_NATS_USER": "svc", "B24HUB_NATS_PASSWORD": "s3cret"}},
		{"password from a file", map[string]string{"B24HUB_NATS_URL": pwSrv.ClientURL(), "B24HUB_NATS_USER": "svc", "B24HUB_NATS_PASSWORD_FILE": write(t, "pw", []byte("s3cret\n"))}},
		{"credentials file", map[string]string{"B24HUB_NATS_URL": credsSrv.ClientURL(), "B24HUB_NATS_CREDS": creds}},
		{"TLS with a private CA", map[string]string{"B24HUB_NATS_URL": "tls://" + tlsSrv.Addr().String(), "B24HUB_NATS_TLS_CA": caFile}},
		{"nats context file", map[string]string{"B24HUB_NATS_CONTEXT": ctxFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := natsauth.FromEnv(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			nc, _, err := cfg.Connect()
			if err != nil {
				t.Fatal(err)
			}
			nc.Close()
			// Without its credentials the same server refuses.
			bare := natsauth.Config{URL: cfg.URL}
			if tt.env["B24HUB_NATS_CONTEXT"] != "" {
				bare.URL = nkeySrv.ClientURL()
			}
			if nc, _, err := bare.Connect(); err == nil {
				nc.Close()
				t.Fatal("connected without credentials")
			}
		})
	}
}

// A context is found by name in the nats CLI's directory, and explicit
// settings win over it.
func TestContextByNameAndOverride(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	if err := os.MkdirAll(filepath.Join(dir, "nats", "context"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := map[string]string{"url": "nats://ctx:4222", "user": "ctxuser", "password": "ctxpw", "ca": "/ctx/ca.pem", "inbox_prefix": "_INBOX.ctx"}
	if err := os.WriteFile(filepath.Join(dir, "nats", "context", "prod.json"), mustJSON(t, ctx), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := natsauth.Config{Context: "prod", URL: "nats://flag:4222", User: "me", Password: "mine", InboxPrefix: "_INBOX.svc"}.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	want := natsauth.Config{Context: "prod", URL: "nats://flag:4222", User: "me", Password: "mine", TLSCA: "/ctx/ca.pem", InboxPrefix: "_INBOX.svc"}
	if got != want {
		t.Errorf("resolved %+v, want %+v", got, want)
	}
	got, err = natsauth.Config{Context: "prod"}.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "ctxuser" || got.Password != "ctxpw" || got.URL != "nats://ctx:4222" || got.InboxPrefix != "_INBOX.ctx" {
		t.Errorf("resolved %+v", got)
	}
	if _, err := (natsauth.Config{Context: "missing"}).Resolved(); err == nil || !strings.Contains(err.Error(), `context "missing"`) {
		t.Errorf("missing context: %v", err)
	}
}

// Settings that cannot work fail before connecting, naming the setting.
func TestOptionsRefuseBadSettings(t *testing.T) {
	seed := write(t, "seed", []byte("SUAKJESHXXBDMMQTQYU5C3BDXDNTA33ZYK2ZDTRCYI5FMS7DKFMNMBUR6Y"))
	tests := []struct {
		name string
		cfg  natsauth.Config
		want string
	}{
		{"two identities", natsauth.Config{NKey: seed, User: "u", Password: "p"}, "one identity per connection, got nkey and user"},
		{"password without user", natsauth.Config{Password: "p"}, "a password needs a user"},
		{"certificate without key", natsauth.Config{TLSCert: seed}, "needs its key"},
		{"missing creds file", natsauth.Config{Creds: "/nonexistent/x.creds"}, "B24HUB_NATS_CREDS"},
		{"missing CA", natsauth.Config{TLSCA: "/nonexistent/ca.pem"}, "B24HUB_NATS_TLS_CA"},
		{"not a seed", natsauth.Config{NKey: write(t, "bad", []byte("hello"))}, "B24HUB_NATS_NKEY"},
		{"broken context", natsauth.Config{Context: write(t, "c.json", []byte("{"))}, "context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.Options()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to say %q", err, tt.want)
			}
		})
	}
	env := map[string]string{"B24HUB_NATS_PASSWORD": "a", "B24HUB_NATS_PASSWORD_FILE": seed}
	if _, err := natsauth.FromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("password and its file: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// operatorServer runs a server in operator mode (JWT accounts, as nsc sets
// up) and returns it with a user's credentials file.
func operatorServer(t *testing.T) (*server.Server, string) {
	t.Helper()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.IssuerAccount = apub
	ujwt, err := uc.Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	useed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	operator, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	s := start(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{operator}, AccountResolver: resolver})
	if err := resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	return s, write(t, "user.creds", creds)
}

// tlsServer runs a server with a certificate signed by a fresh CA and
// returns the CA's PEM file.
func tlsServer(t *testing.T) (string, *server.Server) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, &server.Options{TLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}})
	return write(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), s
}
