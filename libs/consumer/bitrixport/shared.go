package bitrixport

import (
	"context"
	"fmt"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go/jetstream"
)

// SharedLimiter returns a bitrix.KVLimiter over the platform's rate-limit
// bucket (eventbus.BucketRateLimit), so that every replica of every service
// calling a portal spends one leaky bucket per portal (§4.5: applications
// on one server share one limit). The bucket must exist: it is provisioned
// by eventbus.Provision (the local stack, `b24ctl topology apply`, the
// Kubernetes topology Job), never here.
func SharedLimiter(ctx context.Context, js jetstream.JetStream) (*bitrix.KVLimiter, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketRateLimit)
	if err != nil {
		return nil, fmt.Errorf("bitrixport: bucket %s: %w (run `b24ctl topology apply`)", eventbus.BucketRateLimit, err)
	}
	return bitrix.NewKVLimiter(kv, bitrix.KVLimiterConfig{})
}

// SharedClients returns RegistryClients whose every client uses the shared
// limiter (SharedLimiter). This is how a service builds its clients; opts
// add the logger, tracer and so on, and cannot replace the limiter.
func SharedClients(ctx context.Context, js jetstream.JetStream, reg Lookup, opts ...bitrix.Option) (*RegistryClients, error) {
	lim, err := SharedLimiter(ctx, js)
	if err != nil {
		return nil, err
	}
	// Last, so that it wins over a WithLimiter in opts.
	opts = append(append([]bitrix.Option(nil), opts...), bitrix.WithLimiter(lim))
	return NewRegistryClients(reg, opts...), nil
}
