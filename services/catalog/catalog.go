// Package catalog lists every b24hub service. Adding a service to the
// platform is one line in All: its Kubernetes base, image, migrate Job,
// NATS permissions, monitoring job lists, the docs' service table and its
// registration in the local stack (`go tool task dev`) all derive from the
// declarations listed here.
package catalog

import (
	"github.com/b24hub/b24hub/libs/svcdecl"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/b24hub/b24hub/services/subscriptions"
	"github.com/b24hub/b24hub/services/tasks"
	"github.com/b24hub/b24hub/services/telephony"
)

// All is every service, in the order the docs list them and the local
// stack starts them.
var All = svcdecl.Catalog{
	ingress.Declaration,
	subscriptions.Declaration,
	monitor.Declaration,
	dealsync.Declaration,
	telephony.Declaration,
	tasks.Declaration,
}
