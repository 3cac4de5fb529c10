package destinations

import (
	"context"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/nats-io/nats.go/jetstream"
)

// Declaration is what the destinations service is: the one source its
// command, Kubernetes manifests, NATS permissions and local-stack
// registration derive from (see libs/svcdecl).
//
// Its durables ("dest-<name>") come from the operator's file, not from
// code, so they are declared as runtime consumers of the two streams a
// destination reads.
var Declaration = svcdecl.Service{
	Name:                   "destinations",
	Summary:                "Delivers raw events and domain changes to declared HTTP endpoints, signed per Standard Webhooks, retried, dead-lettered and ledgered per destination.",
	Role:                   svcdecl.RoleConsumer,
	RuntimeConsumerStreams: []string{eventbus.StreamEvents, eventbus.StreamChanges},
	// Outcomes and dead letters under each destination's durable name.
	Publishes: []string{eventbus.Outcome("*", "*"), eventbus.Dead("*", "*", "*")},
	Checks:    []string{eventbus.StreamEvents, eventbus.StreamChanges},
	// b24ctl lists destinations and the monitor replays to one of them.
	Subscribes: []string{eventbus.ControlDestinationsList, eventbus.ControlDestinationsReplay},
	// One replica delivers a destination at a time (a pinned priority
	// group, which keeps per-entity order); another takes over when it
	// stops. More replicas spread different destinations.
	Scaling: svcdecl.Scaling{MinReplicas: 2, MaxReplicas: 4},
	// The file and the signing secrets it names live in one Secret, mounted
	// as a directory so edits reach the service without a restart.
	SecretFiles: []svcdecl.SecretFile{{Env: "B24HUB_DESTINATIONS_FILE", Secret: "b24hub-destinations", Key: "destinations.yaml",
		Comment: "The operator's destinations (docs/destinations.md) and their signing secrets, re-read every 5s."}},
}

// Command is the destinations command (cmd/destinations): its declaration
// and how it starts; libs/svcmain does the rest, including the admin server
// (B24HUB_ADMIN_ADDR: /healthz, /readyz, /metrics). It keeps no database:
// its positions are its durable consumers'.
var Command = svcmain.Service{Declaration: Declaration, Start: start}

func start(_ context.Context, p *svcmain.Process) (svcmain.Running, error) {
	cfg, err := ConfigFromEnv(p.Getenv)
	if err != nil {
		return svcmain.Running{}, err
	}
	js, err := jetstream.New(p.NATS)
	if err != nil {
		return svcmain.Running{}, err
	}
	svc, err := New(cfg, Deps{JS: js, Logger: p.Log, NATS: p.NATS})
	if err != nil {
		return svcmain.Running{}, err
	}
	return svcmain.Running{Ready: svc.Ready, Run: svc.Run, Service: svc, Attrs: []any{"file", cfg.File}}, nil
}
