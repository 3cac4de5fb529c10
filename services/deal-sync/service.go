package dealsync

import (
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealcommands"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealevents"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
)

// Declaration is what deal-sync is: the one source its command,
// Kubernetes manifests, NATS permissions and local-stack registration
// derive from (see libs/svcdecl).
var Declaration = svcdecl.Service{
	Name:    "deal-sync",
	Summary: "Mirrors deals and publishes field-level deal changes; writes deal updates other systems command.",
	Role:    svcdecl.RoleConsumer,
	Consumers: []svcdecl.Consumer{
		{
			Durable: dealevents.Durable, Stream: eventbus.StreamEvents,
			FilterSubjects: eventbus.RawEventFilter(dealevents.Events...),
		},
		{
			Durable: dealcommands.Durable, Stream: eventbus.StreamCommands,
			FilterSubjects: []string{eventbus.Command(dealcommands.EntityType, "*", dealcommands.Action)},
		},
	},
	Publishes: []string{
		eventbus.Change(dealevents.EntityType, "*", "*"),
		eventbus.Outcome(dealevents.Durable, "*"),
		eventbus.Dead(dealevents.Durable, "*", "*"),
		eventbus.Outcome(dealcommands.Durable, "*"),
		eventbus.Dead(dealcommands.Durable, "*", "*"),
	},
	Buckets: []svcdecl.Bucket{
		{Name: eventbus.BucketPortals, Access: svcdecl.Read},
		{Name: eventbus.BucketRateLimit, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketTokens, Access: svcdecl.ReadWrite},
	},
	Database:     &svcdecl.Database{Schema: store.Schema, Migrations: store.Migrations},
	PortalClient: true,
}
