package render

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/b24hub/b24hub/libs/svcdecl"
)

const permissionsPath = "deploy/nats/permissions.yaml"

// Permissions is the nats-server permissions block of one service's user
// (authorization { users = [{user: <service>, permissions: {...}}] }).
type Permissions struct {
	Publish        []string
	Subscribe      []string
	AllowResponses bool
}

// InboxPrefix is the reply-subject prefix a service's NATS connection must
// use (nats.CustomInboxPrefix), so its user may subscribe to its own
// replies only.
func InboxPrefix(service string) string { return "_INBOX." + service }

// ServicePermissions derives what a service's NATS user may publish and
// subscribe to from its declaration, following the JetStream wire API that
// nats.go's jetstream package speaks:
//
//   - its declared Publishes (PubAcks come back on its inbox);
//   - per durable consumer: look up its stream ($JS.API.STREAM.INFO),
//     create or update the durable ($JS.API.CONSUMER.CREATE.<stream>.<durable>,
//     also with a filter subject appended), read its
//     info, pull ($JS.API.CONSUMER.MSG.NEXT) and acknowledge
//     ($JS.ACK.<stream>.<durable>.>);
//   - per key-value bucket (stream KV_<bucket>): look it up, get entries
//     (direct get, or message get when the bucket has no direct access),
//     watch and list keys (ordered consumers with generated names: create,
//     delete, flow-control replies on $JS.FC); read-write adds
//     $KV.<bucket>.> (put, create, update, delete and purge are publishes);
//   - subscribe: its own inbox, <InboxPrefix>.>, and its declared
//     Subscribes; a service that serves requests may answer them
//     (allow_responses), without a publish permission on any _INBOX.
func ServicePermissions(s svcdecl.Service) Permissions {
	pub := slices.Clone(s.Publishes)
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
	for _, b := range s.Buckets {
		kv := "KV_" + b.Name
		pub = append(pub,
			"$JS.API.STREAM.INFO."+kv,
			"$JS.API.DIRECT.GET."+kv,
			"$JS.API.DIRECT.GET."+kv+".>",
			"$JS.API.STREAM.MSG.GET."+kv,
			"$JS.API.CONSUMER.CREATE."+kv+".>",
			"$JS.API.CONSUMER.DELETE."+kv+".>",
			"$JS.FC."+kv+".>",
		)
		if b.Access == svcdecl.ReadWrite {
			pub = append(pub, "$KV."+b.Name+".>")
		}
	}
	sub := append([]string{InboxPrefix(s.Name) + ".>"}, s.Subscribes...)
	slices.Sort(pub)
	slices.Sort(sub)
	return Permissions{Publish: slices.Compact(pub), Subscribe: slices.Compact(sub), AllowResponses: len(s.Subscribes) > 0}
}

func natsFiles(_ fs.FS, vs []*view) ([]File, error) {
	var b strings.Builder
	b.WriteString(header("the service declarations (services/catalog)"))
	b.WriteString(`# What each service's NATS user may publish and subscribe to: the
# permissions block of its user in nats-server's authorization, keyed by
# service name (the user name). Derived from each declaration's Publishes,
# Subscribes, Consumers and Buckets (tools/render, ServicePermissions says
# how; its test runs them on a real nats-server). Replies are allowed only
# under the inbox prefix _INBOX.<service>: a service must connect with
# nats.CustomInboxPrefix("_INBOX.<service>") before these permissions are
# enforced (the zero-trust issue wires users and prefixes).
`)
	for _, v := range vs {
		p := ServicePermissions(v.Service)
		fmt.Fprintf(&b, "%s:\n  publish:\n    allow:\n", v.Name)
		for _, s := range p.Publish {
			fmt.Fprintf(&b, "      - %q\n", s)
		}
		b.WriteString("  subscribe:\n    allow:\n")
		for _, s := range p.Subscribe {
			fmt.Fprintf(&b, "      - %q\n", s)
		}
		if p.AllowResponses {
			b.WriteString("  # It answers requests on the subjects it subscribes to.\n  allow_responses: true\n")
		}
	}
	return []File{{Path: permissionsPath, Data: []byte(b.String())}}, nil
}
