package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus/natsauth"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/services/catalog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// HarnessUser is the identity of the whole-stack tests' own code (posting
// like Bitrix24 is HTTP; this is reading streams, consumer state and
// buckets, and publishing what no service may): allowed everything. Only
// a stack built with config.harness has it; `go tool task dev` has not.
const HarnessUser = "test-harness"

// identities are the NATS users of the embedded server: every identity of
// the catalog (catalog.Identities: one per service with the permissions
// its declaration derives, the command publishers, b24ctl's operator and
// the topology admin), each with an nkey whose seed is a file in dir, so
// the local stack's services connect exactly as in production (an nkey
// seed file, B24HUB_NATS_NKEY) and every call they make is checked
// against their declaration.
type identities struct {
	dir   string
	perms []svcdecl.Permissions
	// public keys by user
	public map[string]string
}

// identitiesDir is where the seeds are kept, under the data directory.
func identitiesDir(dataDir string) string { return filepath.Join(dataDir, "nats-identities") }

// loadIdentities reads the seed of every identity from dir, creating the
// missing ones, so the seeds (and a b24ctl pointed at them) survive a
// restart of the stack. With harness, HarnessUser is added.
func loadIdentities(dir string, harness bool) (*identities, error) {
	ids := &identities{dir: dir, perms: catalog.Identities(), public: map[string]string{}}
	if harness {
		ids.perms = append(ids.perms, svcdecl.Permissions{User: HarnessUser, Publish: []string{">"}, Subscribe: []string{">"}})
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("NATS identities: %w", err)
	}
	for _, p := range ids.perms {
		kp, err := seedFile(ids.SeedFile(p.User))
		if err != nil {
			return nil, fmt.Errorf("NATS identity %s: %w", p.User, err)
		}
		if ids.public[p.User], err = kp.PublicKey(); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// seedFile returns the user key pair whose seed is in path, writing a new
// one first when the file is missing.
func seedFile(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, err
		}
		seed, _ := kp.Seed()
		return kp, os.WriteFile(path, seed, 0o600)
	}
	if err != nil {
		return nil, err
	}
	return nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
}

// SeedFile is the path of user's nkey seed: what B24HUB_NATS_NKEY names.
func (ids *identities) SeedFile(user string) string { return filepath.Join(ids.dir, user+".nk") }

// users is the server's nkey users with their permissions. A user that
// answers requests gets nats-server's allow_responses defaults (one reply
// within two minutes), as deploy/nats/auth.conf's `allow_responses: true`.
func (ids *identities) users() []*server.NkeyUser {
	out := make([]*server.NkeyUser, 0, len(ids.perms))
	for _, p := range ids.perms {
		sp := &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: p.Publish},
			Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
		}
		if p.AllowResponses {
			sp.Response = &server.ResponsePermission{MaxMsgs: server.DEFAULT_ALLOW_RESPONSE_MAX_MSGS, Expires: server.DEFAULT_ALLOW_RESPONSE_EXPIRATION}
		}
		out = append(out, &server.NkeyUser{Nkey: ids.public[p.User], Permissions: sp})
	}
	return out
}

// has reports whether user is one of the identities.
func (ids *identities) has(user string) bool {
	_, ok := ids.public[user]
	return ok
}

// connect connects to url as user, the way svcmain.ConnectNATS connects a
// service: its nkey seed file and its own inbox prefix (_INBOX.<user>),
// reconnecting forever.
func (ids *identities) connect(url, user string, extra ...nats.Option) (*nats.Conn, error) {
	if !ids.has(user) {
		return nil, fmt.Errorf("no NATS identity %q", user)
	}
	cfg := natsauth.Config{URL: url, NKey: ids.SeedFile(user), InboxPrefix: natsauth.InboxPrefix(user)}
	nc, _, err := cfg.Connect(append([]nats.Option{nats.Name("b24hub-devstack-" + user), nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond)}, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s as %s: %w", url, user, err)
	}
	return nc, nil
}

// serviceEnv is the environment of the named service: getenv, with its NATS
// settings replaced by the embedded server's URL and the service's own
// nkey seed (a user's B24HUB_NATS_* settings are for an external server).
func (ids *identities) serviceEnv(getenv func(string) string, url, name string) func(string) string {
	return func(k string) string {
		switch {
		case k == natsauth.EnvURL:
			return url
		case k == natsauth.EnvNKey:
			return ids.SeedFile(name)
		case strings.HasPrefix(k, "B24HUB_NATS_"):
			return ""
		}
		return getenv(k)
	}
}
