package subscriptions

import (
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/services/subscriptions/internal/store"
)

// Declaration is what the subscriptions service is: the one source its
// command, Kubernetes manifests, NATS permissions and local-stack
// registration derive from (see libs/svcdecl).
//
// Every replica answers install verifications and the control requests;
// the rest runs on the holder of the lease LeaseName in B24_LEASES, so the
// service is a singleton.
var Declaration = svcdecl.Service{
	Name:    "subscriptions",
	Summary: "Keeps every portal's event bindings as declared, verifies app installs, pulls offline events and reconciles missed ones.",
	Role:    svcdecl.RoleControl,
	Consumers: []svcdecl.Consumer{{
		Durable: LifecycleDurable, Stream: eventbus.StreamEvents,
		FilterSubjects: eventbus.RawEventFilter(LifecycleEvents...),
	}},
	Publishes: []string{
		// Offline events and reconciled changes enter as raw events.
		eventbus.RawEvent("*", "*"),
		eventbus.Outcome(LifecycleDurable, "*"),
		eventbus.Dead(LifecycleDurable, "*", "*"),
	},
	Subscribes: []string{eventbus.ControlInstall, eventbus.ControlSubscriptionsDiff, eventbus.ControlSubscriptionsApply},
	Buckets: []svcdecl.Bucket{
		{Name: eventbus.BucketPortals, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketRateLimit, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketTokens, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketLeases, Access: svcdecl.ReadWrite},
	},
	Database:     &svcdecl.Database{Schema: store.Schema, Migrations: store.Migrations},
	PortalClient: true,
	Scaling:      svcdecl.Scaling{Singleton: true, MinReplicas: 2},
	Env: []svcdecl.Env{
		{Name: "B24HUB_INSTANCE_ID", FieldPath: "metadata.name", Comment: "Lease holder identity: the pod name."},
		{Name: "B24HUB_HANDLER_URL", Value: "https://b24hub.example.com",
			Comment: "Public base URL of the ingress; event handlers are bound to\n<this>/bitrix24/events. Overlays set it to the Ingress host."},
	},
}
