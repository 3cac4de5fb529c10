package catalog

import (
	"slices"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
)

// Identities is every NATS identity of the platform: one per service of
// All with the permissions its declaration derives, the command publishers,
// b24ctl's operator identity and the topology admin
// (svcdecl.Catalog.Identities). deploy/nats/permissions.yaml and the local
// stack's embedded server are configured from it.
func Identities() []svcdecl.Permissions { return All.Identities(OperatorPublish()) }

// OperatorPublish is what b24ctl's operator commands publish: `topology
// show` looks up every stream and bucket and lists consumers, `events tail`
// follows raw events through an ordered consumer, `portals list` reads the
// portal registry, and `subscriptions diff|apply` asks the subscriptions
// service, and `destinations list` asks the destinations service. It reads
// no token and changes no stream, bucket or event.
func OperatorPublish() []string {
	pub := []string{eventbus.ControlSubscriptionsDiff, eventbus.ControlSubscriptionsApply, eventbus.ControlDestinationsList}
	for _, st := range eventbus.Streams(eventbus.StreamOptions{}) {
		pub = append(pub, "$JS.API.STREAM.INFO."+st.Name, "$JS.API.CONSUMER.LIST."+st.Name)
	}
	for _, b := range eventbus.Buckets(eventbus.StreamOptions{}) {
		pub = append(pub, "$JS.API.STREAM.INFO.KV_"+b.Bucket)
	}
	// An ordered consumer has a generated name: create, pull and delete
	// any consumer of the raw events stream, never a durable's ack.
	for _, verb := range []string{"CREATE", "MSG.NEXT", "DELETE"} {
		pub = append(pub, "$JS.API.CONSUMER."+verb+"."+eventbus.StreamEvents+".>")
	}
	pub = append(pub, svcdecl.BucketRead(eventbus.BucketPortals)...)
	slices.Sort(pub)
	return slices.Compact(pub)
}
