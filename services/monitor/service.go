package monitor

import (
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/services/monitor/internal/ingest"
	"github.com/b24hub/b24hub/services/monitor/internal/schema"
)

// Declaration is what the monitor is: the one source its command,
// Kubernetes manifests, NATS permissions and local-stack registration
// derive from (see libs/svcdecl).
//
// Its API replicas are interchangeable and the alert evaluator inside
// holds a PostgreSQL advisory lease, so it runs a fixed two replicas (no
// autoscaler) and is no singleton.
var Declaration = svcdecl.Service{
	Name:    "monitor",
	Summary: "Records every event, outcome and dead letter in a delivery ledger, raises alerts, serves the dashboard and API, and replays events.",
	Role:    svcdecl.RoleObserver,
	Consumers: []svcdecl.Consumer{
		{Durable: ingest.DurableLedger, Stream: eventbus.StreamEvents, FilterSubjects: eventbus.RawEventFilter()},
		{Durable: ingest.DurableOutcomes, Stream: eventbus.StreamOutcomes, FilterSubjects: []string{eventbus.OutcomesPrefix + ".>"}},
		{Durable: ingest.DurableDead, Stream: eventbus.StreamDead, FilterSubjects: []string{eventbus.DeadPrefix + ".>"}},
	},
	// Replays enter as raw events again.
	Publishes: []string{eventbus.RawEvent("*", "*")},
	// The alert rules watch the live portal registry: the portals file and
	// the bucket.
	Buckets:     []svcdecl.Bucket{{Name: eventbus.BucketPortals, Access: svcdecl.Read}},
	Database:    &svcdecl.Database{Schema: schema.Name, Migrations: schema.Migrations},
	Ports:       []svcdecl.Port{{Name: "api", Port: 8081, Exposure: svcdecl.Cluster, Env: "B24HUB_MONITOR_ADDR"}},
	Scaling:     svcdecl.Scaling{MinReplicas: 2, MaxReplicas: 2},
	MemoryLimit: "512Mi",
	SecretFiles: []svcdecl.SecretFile{
		{Env: "B24HUB_MONITOR_TOKEN_FILE", Secret: "b24hub-monitor-token", Key: "token",
			Comment: "The API's bearer token (the dashboard and b24ctl send it)."},
		{Env: "B24HUB_PORTALS_FILE", Secret: "b24hub-portals", Key: "portals.yaml",
			Comment: "The live portal registry the alert rules watch (with the\nB24_PORTALS bucket): a portal removed here stops being watched."},
	},
	Env: []svcdecl.Env{{Name: "B24HUB_DATABASE_MAX_CONNS", Value: "10",
		Comment: "The three ledger consumers, the evaluator's lease connection and\nthe API each hold one; deploy/k8stest checks the cluster's budget."}},
}
