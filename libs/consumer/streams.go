package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
)

// streamWait is about how long ProvisionWhenStreamsExist waits between
// attempts (jittered by ±25%, so replicas starting together spread out).
const streamWait = 2 * time.Second

// ProvisionWhenStreamsExist is [Runtime.Provision] for a service starting up:
// while a stream is missing (jetstream.ErrStreamNotFound) it logs a warning
// and tries again about every 2s, because the streams belong to eventbus.Provision
// (`b24ctl topology apply`, the Kubernetes job, the local stack), which may
// not have run yet. It returns nil once every durable consumer exists,
// ctx.Err() when ctx ends first, and any other provisioning error at once.
func (r *Runtime) ProvisionWhenStreamsExist(ctx context.Context) error {
	wait := backoff.NewExponentialBackOff(backoff.WithInitialInterval(streamWait), backoff.WithMultiplier(1),
		backoff.WithRandomizationFactor(0.25), backoff.WithMaxElapsedTime(0))
	for {
		err := r.Provision(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		r.log.WarnContext(ctx, "streams missing; waiting for `b24ctl topology apply` or the local stack", "error", err.Error())
		t := time.NewTimer(wait.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
