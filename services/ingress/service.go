package ingress

import (
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
)

// Declaration is what the ingress is: the one source its command,
// Kubernetes manifests, NATS permissions and local-stack registration
// derive from (see libs/svcdecl).
var Declaration = svcdecl.Service{
	Name:    "ingress",
	Summary: "Receives Bitrix24 event POSTs, authenticates them, strips secrets and stores each in JetStream before answering 200.",
	Role:    svcdecl.RoleEdge,
	Publishes: []string{
		eventbus.RawEvent("*", "*"),
		// An ONAPPINSTALL from an unknown portal is a request to the
		// subscriptions service (core NATS, never stored).
		eventbus.ControlInstall,
	},
	Buckets: []svcdecl.Bucket{{Name: eventbus.BucketPortals, Access: svcdecl.Read}},
	// Its readiness probe checks that the raw events stream exists.
	Checks:  []string{eventbus.StreamEvents},
	Ports:   []svcdecl.Port{{Name: "http", Port: 8080, Exposure: svcdecl.Public, Env: "B24HUB_INGRESS_ADDR"}},
	Scaling: svcdecl.Scaling{MinReplicas: 2, MaxReplicas: 10},
	SecretFiles: []svcdecl.SecretFile{{Env: "B24HUB_PORTALS_FILE", Secret: "b24hub-portals", Key: "portals.yaml",
		Comment: "The portals the ingress authenticates (with the B24_PORTALS bucket)."}},
}
