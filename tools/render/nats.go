package render

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/services/catalog"
)

const permissionsPath = "deploy/nats/permissions.yaml"

// Permissions is the nats-server permissions block of one identity's user
// (authorization { users = [{nkey: <key>, permissions: {...}}] }).
type Permissions = svcdecl.Permissions

// InboxPrefix is the reply-subject prefix a service's NATS connection must
// use (nats.CustomInboxPrefix), so its user may subscribe to its own
// replies only.
func InboxPrefix(service string) string { return svcdecl.InboxPrefix(service) }

// ServicePermissions derives what a service's NATS user may publish and
// subscribe to from its declaration (svcdecl.Service.Permissions says how).
func ServicePermissions(s svcdecl.Service) Permissions { return s.Permissions() }

func natsFiles(_ fs.FS, vs []*view) ([]File, error) {
	c := make(svcdecl.Catalog, len(vs))
	for i, v := range vs {
		c[i] = v.Service
	}
	var b strings.Builder
	b.WriteString(header("the service declarations (services/catalog)"))
	b.WriteString(`# What each service's NATS user may publish and subscribe to: the
# permissions block of its user in nats-server's authorization, keyed by
# identity name. Services are derived from each declaration's Publishes,
# Subscribes, Consumers, Checks and Buckets (svcdecl.Service.Permissions);
# then the command publishers (outside systems that may publish exactly
# what one durable reads), b24ctl's operator identity and the topology
# admin (svcdecl.Catalog.Identities, services/catalog.Identities). Every
# identity connects with the inbox prefix _INBOX.<identity>, so it receives
# only its own replies.
`)
	for _, p := range c.Identities(catalog.OperatorPublish()) {
		fmt.Fprintf(&b, "%s:\n  publish:\n    allow:\n", p.User)
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
