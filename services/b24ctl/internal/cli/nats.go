package cli

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// connect opens NATS or fails with ExitUnavailable and the fix.
func (c *call) connect(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	nc, err := nats.Connect(c.o.natsURL, nats.Name("b24ctl"), nats.Timeout(timeout))
	if err != nil {
		return nil, nil, fail(ExitUnavailable, "cannot reach NATS at %s: %v — start the local stack (go tool task dev) or set --nats-url / B24HUB_NATS_URL", c.o.natsURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fail(ExitUnavailable, "jetstream: %v", err)
	}
	return nc, js, nil
}
