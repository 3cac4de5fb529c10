package cli

import (
	"context"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus/natsauth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// OperatorUser is the NATS identity b24ctl's commands connect as by
// default (its inbox prefix is _INBOX.b24ctl); `topology apply` needs the
// admin identity's credentials instead (deploy/nats/permissions.yaml).
const OperatorUser = "b24ctl"

// AdminUser is the NATS identity `topology apply` needs: it creates and
// updates streams and buckets (inbox prefix _INBOX.topology).
const AdminUser = "topology"

// defaultTimeout is --timeout's default.
const defaultTimeout = 30 * time.Second

// natsOptions are the flags of every command that talks to NATS.
type natsOptions struct {
	url     string
	timeout time.Duration
	// auth is the identity and TLS settings, as the nats CLI takes them;
	// the password and token come from the environment only (B24HUB_NATS_PASSWORD
	// or _FILE, B24HUB_NATS_TOKEN or _FILE), never a flag `ps` would show.
	auth natsauth.Config
	// envErr is a broken _FILE setting, reported when connecting.
	envErr error
	// identity is the NATS user the command needs, naming its inbox
	// prefix: OperatorUser when empty, AdminUser for `topology apply`.
	identity string
}

// natsFlags adds the NATS connection flags to cmd.
func (a *app) natsFlags(cmd *cobra.Command) *natsOptions {
	o := &natsOptions{}
	o.auth, o.envErr = natsauth.FromEnv(a.env.Getenv)
	cmd.Flags().StringVar(&o.url, "nats-url", a.env.Getenv(natsauth.EnvURL), "NATS server URL (env B24HUB_NATS_URL; default the context's, else nats://127.0.0.1:4222)")
	f := cmd.Flags()
	f.StringVar(&o.auth.Context, "nats-context", o.auth.Context, "nats CLI context: a name under ~/.config/nats/context or a JSON file (env B24HUB_NATS_CONTEXT)")
	f.StringVar(&o.auth.Creds, "nats-creds", o.auth.Creds, "NATS credentials file (env B24HUB_NATS_CREDS)")
	f.StringVar(&o.auth.NKey, "nats-nkey", o.auth.NKey, "NATS user nkey seed file (env B24HUB_NATS_NKEY)")
	f.StringVar(&o.auth.User, "nats-user", o.auth.User, "NATS user; the password from B24HUB_NATS_PASSWORD or _FILE (env B24HUB_NATS_USER)")
	f.StringVar(&o.auth.TLSCA, "nats-tls-ca", o.auth.TLSCA, "CA file verifying the NATS server (env B24HUB_NATS_TLS_CA)")
	f.StringVar(&o.auth.TLSCert, "nats-tls-cert", o.auth.TLSCert, "client certificate for NATS (env B24HUB_NATS_TLS_CERT)")
	f.StringVar(&o.auth.TLSKey, "nats-tls-key", o.auth.TLSKey, "client certificate's key (env B24HUB_NATS_TLS_KEY)")
	timeoutFlag(cmd, &o.timeout)
	return o
}

// timeoutFlag adds --timeout once, shared by the NATS and monitor flags of
// a command that uses both.
func timeoutFlag(cmd *cobra.Command, d *time.Duration) {
	if f := cmd.Flags().Lookup("timeout"); f != nil {
		return
	}
	cmd.Flags().DurationVar(d, "timeout", defaultTimeout, "how long to wait for NATS or the monitor to answer")
}

// timeout returns --timeout of cmd.
func timeout(cmd *cobra.Command) time.Duration {
	d, err := cmd.Flags().GetDuration("timeout")
	if err != nil || d <= 0 {
		return defaultTimeout
	}
	return d
}

// bounded limits a command that answers once (not a follow-mode one) to
// --timeout.
func bounded(ctx context.Context, cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, timeout(cmd))
}

// connect opens NATS or fails with ExitUnavailable and the fix. Only the
// dial is bounded by --timeout: the connection then lives as long as ctx.
func (o *natsOptions) connect(cmd *cobra.Command, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	if o.envErr != nil {
		return nil, nil, usageErr("%v", o.envErr)
	}
	cfg := o.auth
	cfg.URL = o.url
	cfg, err := cfg.Resolved()
	if err != nil {
		return nil, nil, usageErr("%v", err)
	}
	// The identity's own inbox (its user may read nothing else), unless
	// the context names one.
	if cfg.InboxPrefix == "" {
		cfg.InboxPrefix = natsauth.InboxPrefix(or(o.identity, OperatorUser))
	}
	opts, err := cfg.Options()
	if err != nil {
		return nil, nil, usageErr("%v", err)
	}
	o.url = cfg.URL
	opts = append(append([]nats.Option{nats.Name("b24ctl"), nats.Timeout(timeout(cmd))}, extra...), opts...)
	nc, err := nats.Connect(o.url, opts...)
	if err != nil {
		return nil, nil, fail(ExitUnavailable, "cannot reach NATS at %s: %v — start the local stack (go tool task dev) or set --nats-url / B24HUB_NATS_URL, and the identity (--nats-creds, --nats-nkey, --nats-context)", o.url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fail(ExitUnavailable, "jetstream: %v", err)
	}
	return nc, js, nil
}
