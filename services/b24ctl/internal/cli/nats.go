package cli

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// defaultTimeout is --timeout's default.
const defaultTimeout = 30 * time.Second

// natsOptions are the flags of every command that talks to NATS.
type natsOptions struct {
	url     string
	timeout time.Duration
}

// natsFlags adds the NATS connection flags to cmd.
func (a *app) natsFlags(cmd *cobra.Command) *natsOptions {
	o := &natsOptions{}
	cmd.Flags().StringVar(&o.url, "nats-url", or(a.env.Getenv("B24HUB_NATS_URL"), "nats://127.0.0.1:4222"), "NATS server URL (env B24HUB_NATS_URL)")
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
	opts := append([]nats.Option{nats.Name("b24ctl"), nats.Timeout(timeout(cmd))}, extra...)
	nc, err := nats.Connect(o.url, opts...)
	if err != nil {
		return nil, nil, fail(ExitUnavailable, "cannot reach NATS at %s: %v — start the local stack (go tool task dev) or set --nats-url / B24HUB_NATS_URL", o.url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fail(ExitUnavailable, "jetstream: %v", err)
	}
	return nc, js, nil
}
