package telephony

import (
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/services/telephony/internal/consumer/callend"
	"github.com/b24hub/b24hub/services/telephony/internal/store"
)

// Declaration is what the telephony service is: the one source its
// command, Kubernetes manifests, NATS permissions and local-stack
// registration derive from (see libs/svcdecl).
var Declaration = svcdecl.Service{
	Name:    "telephony",
	Summary: "Mirrors finished calls (ONVOXIMPLANTCALLEND) with their recordings and publishes call changes.",
	Role:    svcdecl.RoleConsumer,
	Consumers: []svcdecl.Consumer{{
		Durable: callend.Durable, Stream: eventbus.StreamEvents,
		FilterSubjects: eventbus.RawEventFilter(callend.Event),
	}},
	Publishes: []string{
		eventbus.Change(callend.EntityType, "*", "*"),
		eventbus.Outcome(callend.Durable, "*"),
		eventbus.Dead(callend.Durable, "*", "*"),
	},
	Buckets: []svcdecl.Bucket{
		{Name: eventbus.BucketPortals, Access: svcdecl.Read},
		{Name: eventbus.BucketRateLimit, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketTokens, Access: svcdecl.ReadWrite},
	},
	Database:     &svcdecl.Database{Schema: store.Schema, Migrations: store.Migrations},
	PortalClient: true,
}
