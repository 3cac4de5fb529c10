package svcdecl

import (
	"slices"
	"strings"
)

// Permissions is what one NATS identity (a user of nats-server's
// authorization block) may publish and subscribe to.
type Permissions struct {
	// User is the identity's name: the service name, or one of the
	// non-service identities (OperatorUser, AdminUser, a command
	// publisher).
	User string
	// Publish and Subscribe are the allowed subjects (wildcards allowed);
	// everything else is refused by the server.
	Publish   []string
	Subscribe []string
	// AllowResponses lets the identity answer requests it received (one
	// reply each) without a publish permission on any _INBOX.
	AllowResponses bool
}

// Identities that are not services.
const (
	// AdminUser provisions the topology (`b24ctl topology apply`, the
	// topology Job, the local stack): the whole JetStream API.
	AdminUser = "topology"
	// OperatorUser is b24ctl's operator commands: reading the topology and
	// the portal registry, tailing raw events, and asking the subscriptions
	// service for a diff or an apply. It cannot change streams, write
	// buckets or publish events.
	OperatorUser = "b24ctl"
)

// InboxPrefix is the reply-subject prefix an identity's connection uses
// (nats.CustomInboxPrefix): it may subscribe to its own replies only.
func InboxPrefix(user string) string { return "_INBOX." + user }

// Permissions derives what the service's NATS user may publish and
// subscribe to from its declaration, following the JetStream wire API that
// nats.go's jetstream package speaks:
//
//   - its declared Publishes (PubAcks come back on its inbox);
//   - the account's JetStream info ($JS.API.INFO): the probe with which
//     its connection notices a server cut off from the cluster and moves
//     (eventbus.ServerWatch);
//   - per durable consumer: look up its stream ($JS.API.STREAM.INFO),
//     create or update the durable ($JS.API.CONSUMER.CREATE.<stream>.<durable>,
//     also with a filter subject appended), read its info, pull
//     ($JS.API.CONSUMER.MSG.NEXT) and acknowledge ($JS.ACK.<stream>.<durable>.>);
//   - per stream in RuntimeConsumerStreams: the same for any durable of
//     the stream (names chosen at run time), and pausing it and reading
//     one stored message (a destination's circuit breaker and replay);
//   - per stream in Checks: look it up ($JS.API.STREAM.INFO);
//   - per stream in Inspects: look it up, list its consumers
//     ($JS.API.CONSUMER.LIST) and get stored messages (message get, or
//     direct get when the stream allows it);
//   - per stream in Scans: ordered consumers (generated names: create,
//     pull from and delete any consumer of the stream);
//   - per key-value bucket (stream KV_<bucket>): look it up, get entries
//     (direct get, or message get when the bucket has no direct access),
//     watch and list keys (ordered consumers with generated names: create,
//     delete, flow-control replies on $JS.FC); read-write adds
//     $KV.<bucket>.> (put, create, update, delete and purge are publishes);
//   - subscribe: its own inbox, <InboxPrefix>.>, and its declared
//     Subscribes; a service that serves requests may answer them
//     (allow_responses), without a publish permission on any _INBOX.
func (s Service) Permissions() Permissions {
	pub := append(slices.Clone(s.Publishes), "$JS.API.INFO")
	for _, st := range s.Checks {
		pub = append(pub, "$JS.API.STREAM.INFO."+st)
	}
	for _, st := range s.Inspects {
		pub = append(pub, "$JS.API.STREAM.INFO."+st, "$JS.API.CONSUMER.LIST."+st,
			"$JS.API.STREAM.MSG.GET."+st, "$JS.API.DIRECT.GET."+st, "$JS.API.DIRECT.GET."+st+".>")
	}
	for _, st := range s.Scans {
		pub = append(pub, "$JS.API.STREAM.INFO."+st)
		for _, verb := range []string{"CREATE", "MSG.NEXT", "DELETE"} {
			pub = append(pub, "$JS.API.CONSUMER."+verb+"."+st+".>")
		}
	}
	streams := map[string]bool{}
	for _, c := range s.Consumers {
		if !streams[c.Stream] {
			streams[c.Stream] = true
			pub = append(pub, "$JS.API.STREAM.INFO."+c.Stream)
		}
		// nats.go appends the filter to the subject when the config has
		// one FilterSubject; libs/consumer sets FilterSubjects, so the
		// bare name is the one the services use. Either creates only this
		// durable.
		create := "$JS.API.CONSUMER.CREATE." + c.Stream + "." + c.Durable
		pub = append(pub, create, create+".>",
			"$JS.API.CONSUMER.INFO."+c.Stream+"."+c.Durable,
			"$JS.API.CONSUMER.MSG.NEXT."+c.Stream+"."+c.Durable,
			"$JS.ACK."+c.Stream+"."+c.Durable+".>",
		)
	}
	for _, st := range s.RuntimeConsumerStreams {
		// Durables named at run time: any durable of the stream.
		pub = append(pub, "$JS.API.STREAM.INFO."+st,
			"$JS.API.CONSUMER.CREATE."+st+".*", "$JS.API.CONSUMER.CREATE."+st+".*.>",
			"$JS.API.CONSUMER.INFO."+st+".*", "$JS.API.CONSUMER.MSG.NEXT."+st+".*",
			"$JS.API.CONSUMER.UNPIN."+st+".*",
			// Pause a durable (a circuit breaker) and read a stored message
			// again (a replay to one durable's receiver).
			"$JS.API.CONSUMER.PAUSE."+st+".*",
			"$JS.API.STREAM.MSG.GET."+st, "$JS.API.DIRECT.GET."+st, "$JS.API.DIRECT.GET."+st+".>",
			"$JS.ACK."+st+".*.>")
	}
	for _, b := range s.Buckets {
		pub = append(pub, bucketRead(b.Name)...)
		if b.Access == ReadWrite {
			pub = append(pub, "$KV."+b.Name+".>")
		}
	}
	sub := append([]string{InboxPrefix(s.Name) + ".>"}, s.Subscribes...)
	return Permissions{User: s.Name, Publish: sorted(pub), Subscribe: sorted(sub), AllowResponses: len(s.Subscribes) > 0}
}

// bucketRead is what reading a key-value bucket takes: lookup, get, watch
// and list keys.
func bucketRead(bucket string) []string {
	kv := "KV_" + bucket
	return []string{
		"$JS.API.STREAM.INFO." + kv,
		"$JS.API.DIRECT.GET." + kv,
		"$JS.API.DIRECT.GET." + kv + ".>",
		"$JS.API.STREAM.MSG.GET." + kv,
		"$JS.API.CONSUMER.CREATE." + kv + ".>",
		"$JS.API.CONSUMER.DELETE." + kv + ".>",
		"$JS.FC." + kv + ".>",
	}
}

func sorted(list []string) []string {
	slices.Sort(list)
	return slices.Compact(list)
}

// CommandPublisher is the name of the identity that outside systems use to
// publish what the durable consumer reads when no service of the catalog
// publishes it (commands): "<durable>-publisher".
func CommandPublisher(durable string) string { return durable + "-publisher" }

// Identities is every NATS identity of a deployment, in a stable order:
// one per service (Permissions), one command publisher per durable whose
// filter subjects no service publishes (it may publish exactly those
// subjects, so a command on a subject its sender may not use never reaches
// the handler), the operator (OperatorUser, publishing operatorPublish:
// the JetStream API and control requests b24ctl's commands use) and the
// admin (AdminUser).
func (c Catalog) Identities(operatorPublish []string) []Permissions {
	var out []Permissions
	for _, s := range c {
		out = append(out, s.Permissions())
	}
	for _, s := range c {
		for _, cs := range s.Consumers {
			fed := slices.ContainsFunc(cs.FilterSubjects, func(f string) bool {
				return slices.ContainsFunc(c, func(o Service) bool {
					return slices.ContainsFunc(o.Publishes, func(p string) bool { return subjectsOverlap(p, f) })
				})
			})
			if fed {
				continue
			}
			user := CommandPublisher(cs.Durable)
			out = append(out, Permissions{User: user, Publish: sorted(slices.Clone(cs.FilterSubjects)),
				Subscribe: []string{InboxPrefix(user) + ".>"}})
		}
	}
	return append(out,
		Permissions{User: OperatorUser, Publish: sorted(slices.Clone(operatorPublish)), Subscribe: []string{InboxPrefix(OperatorUser) + ".>"}},
		Permissions{User: AdminUser, Publish: []string{"$JS.API.>"}, Subscribe: []string{InboxPrefix(AdminUser) + ".>"}},
	)
}

// BucketRead is what reading a key-value bucket takes on the JetStream
// API: lookup, get, watch and list keys.
func BucketRead(bucket string) []string { return bucketRead(bucket) }

// subjectsOverlap reports whether some subject matches both patterns.
func subjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		aEnd, bEnd := i == len(at), i == len(bt)
		switch {
		case aEnd || bEnd:
			return aEnd && bEnd
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] != "*" && bt[i] != "*" && at[i] != bt[i]:
			return false
		}
	}
}
