// Package catalog lists every b24hub service. Adding a service to the
// platform is one line in Services: its Kubernetes base, image, migrate
// Job, NATS permissions, monitoring job lists, the docs' service table and
// its registration in the local stack (`go tool task dev`) all derive from
// what is listed here.
package catalog

import (
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/svcmain"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
	"github.com/b24hub/b24hub/services/destinations"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/b24hub/b24hub/services/subscriptions"
	"github.com/b24hub/b24hub/services/tasks"
	"github.com/b24hub/b24hub/services/telephony"
)

// Services is every service's command (its declaration and how it
// starts), in the order the docs list them and the local stack starts
// them: the ingress first (the others are told its address), then the
// rest.
var Services = []svcmain.Service{
	ingress.Command,
	subscriptions.Command,
	monitor.Command,
	dealsync.Command,
	telephony.Command,
	tasks.Command,
	destinations.Command,
}

// All is every service's declaration, in the order of Services.
var All = declarations(Services)

func declarations(ss []svcmain.Service) svcdecl.Catalog {
	out := make(svcdecl.Catalog, len(ss))
	for i, s := range ss {
		out[i] = s.Declaration
	}
	return out
}
