package tasks

import (
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/services/tasks/internal/consumer/taskevents"
	"github.com/b24hub/b24hub/services/tasks/internal/store"
)

// Declaration is what the tasks service is: the one source its command,
// Kubernetes manifests, NATS permissions and local-stack registration
// derive from (see libs/svcdecl).
var Declaration = svcdecl.Service{
	Name:    "tasks",
	Summary: "Mirrors tasks with their checklists and publishes field-level task changes.",
	Role:    svcdecl.RoleConsumer,
	Consumers: []svcdecl.Consumer{{
		Durable: taskevents.Durable, Stream: eventbus.StreamEvents,
		FilterSubjects: eventbus.RawEventFilter(taskevents.Events...),
	}},
	Publishes: []string{
		eventbus.Change(taskevents.EntityType, "*", "*"),
		eventbus.Outcome(taskevents.Durable, "*"),
		eventbus.Dead(taskevents.Durable, "*", "*"),
	},
	Buckets: []svcdecl.Bucket{
		{Name: eventbus.BucketPortals, Access: svcdecl.Read},
		{Name: eventbus.BucketRateLimit, Access: svcdecl.ReadWrite},
		{Name: eventbus.BucketTokens, Access: svcdecl.ReadWrite},
	},
	Database:     &svcdecl.Database{Schema: store.Schema, Migrations: store.Migrations},
	PortalClient: true,
}
