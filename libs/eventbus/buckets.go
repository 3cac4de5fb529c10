package eventbus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Key-value buckets b24hub keeps in JetStream. Like streams they are defined
// here and created by Provision.
const (
	// BucketPortals holds portals added at run time (app installs), keyed by
	// member id; the ingress watches it. See libs/portals.
	BucketPortals = "B24_PORTALS"
	// BucketRateLimit holds each portal's shared leaky-bucket state so every
	// replica of every service respects one limit. See libs/bitrix.
	BucketRateLimit = "B24_RATELIMIT"
	// BucketTokens holds OAuth token records (encrypted by their writer) with
	// compare-and-swap revisions. See libs/bitrix.
	BucketTokens = "B24_TOKENS"
	// BucketLeases holds singleton leases (subscriptions, alert evaluation).
	BucketLeases = "B24_LEASES"
)

// Buckets returns every key-value bucket definition.
func Buckets(o StreamOptions) []jetstream.KeyValueConfig {
	o = o.withDefaults()
	return []jetstream.KeyValueConfig{
		{Bucket: BucketPortals, Description: "Portals added at run time", History: 5, Storage: o.Storage, Replicas: o.Replicas},
		// Idle portals' limiter state expires; it is rebuilt on the next call.
		{Bucket: BucketRateLimit, Description: "Per-portal REST leaky bucket state", History: 1, TTL: time.Hour, Storage: o.Storage, Replicas: o.Replicas},
		{Bucket: BucketTokens, Description: "OAuth tokens (encrypted) with CAS revisions", History: 5, Storage: o.Storage, Replicas: o.Replicas},
		{Bucket: BucketLeases, Description: "Singleton leases", History: 1, Storage: o.Storage, Replicas: o.Replicas},
	}
}

func provisionBuckets(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	for _, cfg := range Buckets(o) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("eventbus: provision bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}
