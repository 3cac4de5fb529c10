// Package natsauth turns b24hub's NATS settings into nats.go connect
// options, taking credentials the way the `nats` CLI does: a credentials
// file (user JWT and nkey seed), an nkey seed file, a user and password, a
// token, TLS CA, client certificate and key, and a `nats context` JSON file
// that supplies any of them. Every service (libs/svcmain) and b24ctl
// connect through it, so an identity is configured the same way everywhere.
//
// Each service connects with its own inbox prefix (_INBOX.<name>): its NATS
// user may subscribe to its own replies only, so no identity can read the
// answers another one gets (install decisions, KV values, PubAcks).
package natsauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
)

// Config is how to reach and authenticate to NATS. Every field is optional;
// an explicit field wins over the same setting in Context, as the nats CLI
// lets flags override a context.
type Config struct {
	// URL is the server URL list (comma-separated). Default: the context's
	// url, else nats.DefaultURL.
	URL string
	// Context is a nats CLI context: a path to its JSON file, or a name
	// looked up as <config dir>/nats/context/<name>.json (the directory the
	// nats CLI writes; $XDG_CONFIG_HOME or ~/.config).
	Context string
	// Creds is a credentials file (user JWT and nkey seed) as nsc writes it.
	Creds string
	// NKey is a file holding a user nkey seed (SU...).
	NKey string
	// User and Password authenticate with a user and password, where the
	// server has no nkey or JWT user for this client. Password without
	// User is an error.
	User, Password string
	// Token is a bearer token for servers configured with one.
	Token string
	// TLSCA is a PEM file of the CAs that sign the server's certificate.
	TLSCA string
	// TLSCert and TLSKey are the client certificate and its key (PEM), for
	// servers that verify clients; both or neither.
	TLSCert, TLSKey string
	// InboxPrefix replaces _INBOX as the prefix of reply subjects (a
	// service's user may subscribe to its own prefix only). Default: the
	// context's inbox_prefix, else _INBOX.
	InboxPrefix string
}

// Environment variables FromEnv reads. Each secret also has a _FILE form
// for the password and token (the others already are files).
const (
	EnvURL      = "B24HUB_NATS_URL"
	EnvContext  = "B24HUB_NATS_CONTEXT"
	EnvCreds    = "B24HUB_NATS_CREDS"
	EnvNKey     = "B24HUB_NATS_NKEY"
	EnvUser     = "B24HUB_NATS_USER"
	EnvPassword = "B24HUB_NATS_PASSWORD"
	EnvToken    = "B24HUB_NATS_TOKEN"
	EnvTLSCA    = "B24HUB_NATS_TLS_CA"
	EnvTLSCert  = "B24HUB_NATS_TLS_CERT"
	EnvTLSKey   = "B24HUB_NATS_TLS_KEY"
)

// FromEnv reads the B24HUB_NATS_* variables (the Env constants; a password
// or token may be given in a file named by B24HUB_NATS_PASSWORD_FILE or
// B24HUB_NATS_TOKEN_FILE). It returns an error only when a _FILE cannot be
// read or both a value and its _FILE are set.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		URL: getenv(EnvURL), Context: getenv(EnvContext), Creds: getenv(EnvCreds), NKey: getenv(EnvNKey),
		User: getenv(EnvUser), TLSCA: getenv(EnvTLSCA), TLSCert: getenv(EnvTLSCert), TLSKey: getenv(EnvTLSKey),
	}
	var err error
	if c.Password, err = secret(getenv, EnvPassword); err != nil {
		return Config{}, err
	}
	if c.Token, err = secret(getenv, EnvToken); err != nil {
		return Config{}, err
	}
	return c, nil
}

func secret(getenv func(string) string, name string) (string, error) {
	v, file := getenv(name), getenv(name+"_FILE")
	switch {
	case file == "":
		return v, nil
	case v != "":
		return "", fmt.Errorf("natsauth: set %s or %s_FILE, not both", name, name)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("natsauth: %s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// natsContext is the part of a nats CLI context file b24hub uses; the CLI's
// other keys (description, color_scheme, jetstream_domain, ...) are ignored.
type natsContext struct {
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	Token       string `json:"token"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CA          string `json:"ca"`
	InboxPrefix string `json:"inbox_prefix"`
}

// contextPath resolves a context name or path the way the nats CLI stores
// contexts.
func contextPath(nameOrPath string) (string, error) {
	if strings.ContainsRune(nameOrPath, os.PathSeparator) || strings.HasSuffix(nameOrPath, ".json") {
		return nameOrPath, nil
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("natsauth: context %q: no config directory: %w", nameOrPath, err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "nats", "context", nameOrPath+".json"), nil
}

// Resolved returns c with its context's settings filled in where c leaves
// them empty, and "~/" in file paths expanded as the nats CLI does.
func (c Config) Resolved() (Config, error) {
	if c.Context != "" {
		path, err := contextPath(c.Context)
		if err != nil {
			return Config{}, err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("natsauth: context %q: %w", c.Context, err)
		}
		var x natsContext
		if err := json.Unmarshal(b, &x); err != nil {
			return Config{}, fmt.Errorf("natsauth: context %s: %w", path, err)
		}
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		fill(&c.URL, x.URL)
		fill(&c.Creds, x.Creds)
		fill(&c.NKey, x.NKey)
		fill(&c.TLSCA, x.CA)
		fill(&c.TLSCert, x.Cert)
		fill(&c.TLSKey, x.Key)
		fill(&c.InboxPrefix, x.InboxPrefix)
		// User and password come as a pair: a context's password never
		// joins an explicit user.
		if c.User == "" && c.Password == "" {
			c.User, c.Password = x.User, x.Password
		}
		fill(&c.Token, x.Token)
	}
	for _, p := range []*string{&c.Creds, &c.NKey, &c.TLSCA, &c.TLSCert, &c.TLSKey} {
		*p = expandHome(*p)
	}
	if c.URL == "" {
		c.URL = nats.DefaultURL
	}
	return c, nil
}

func expandHome(p string) string {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, rest)
}

// Options resolves c (Resolved) and returns the nats.go options that
// authenticate and secure the connection, checking first that every named
// file can be read, so a typo fails at start with the setting's name
// rather than as a refused connection. It is an error to combine a
// credentials file, an nkey seed, a user and a token (a connection has one
// identity), to give a password without a user, or a certificate without
// its key.
func (c Config) Options() ([]nats.Option, error) {
	c, err := c.Resolved()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, id := range []struct{ name, v string }{{"creds", c.Creds}, {"nkey", c.NKey}, {"user", c.User}, {"token", c.Token}} {
		if id.v != "" {
			ids = append(ids, id.name)
		}
	}
	var errs []error
	if len(ids) > 1 {
		errs = append(errs, fmt.Errorf("natsauth: one identity per connection, got %s", strings.Join(ids, " and ")))
	}
	if c.Password != "" && c.User == "" {
		errs = append(errs, errors.New("natsauth: a password needs a user ("+EnvUser+")"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("natsauth: a TLS client certificate needs its key and the key its certificate ("+EnvTLSCert+", "+EnvTLSKey+")"))
	}
	for _, f := range []struct{ env, path string }{{EnvCreds, c.Creds}, {EnvNKey, c.NKey}, {EnvTLSCA, c.TLSCA}, {EnvTLSCert, c.TLSCert}, {EnvTLSKey, c.TLSKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			errs = append(errs, fmt.Errorf("natsauth: %s: %w", f.env, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("natsauth: %s: %w", EnvNKey, err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	return opts, nil
}

// InboxPrefix is the reply-subject prefix of the named identity
// (_INBOX.<name>); its NATS user may subscribe to <prefix>.> only.
func InboxPrefix(name string) string { return "_INBOX." + name }

// Connect resolves c and connects with its options after extra (a name,
// reconnect behaviour); it returns the connection and the URL it used.
func (c Config) Connect(extra ...nats.Option) (*nats.Conn, string, error) {
	r, err := c.Resolved()
	if err != nil {
		return nil, "", err
	}
	opts, err := c.Options()
	if err != nil {
		return nil, r.URL, err
	}
	nc, err := nats.Connect(r.URL, append(extra, opts...)...)
	if err != nil {
		return nil, r.URL, fmt.Errorf("connect to NATS at %s: %w", r.URL, err)
	}
	return nc, r.URL, nil
}
