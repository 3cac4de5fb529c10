package dealsync_test

import (
	"testing"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/eventbus"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealcommands"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealevents"
)

// The declaration validates, names exactly the consumers New registers,
// and allows every subject the service publishes.
func TestDeclaration(t *testing.T) {
	consumertest.Declaration(t, dealsync.Declaration, []consumer.Spec{dealevents.Spec(), dealcommands.Spec()},
		eventbus.Change(dealevents.EntityType, "m1", change.SubjectToken("17")),
		eventbus.Outcome(dealevents.Durable, "m1"),
		eventbus.Dead(dealevents.Durable, "m1", dealevents.Events[0]),
		eventbus.Outcome(dealcommands.Durable, "m1"),
		eventbus.Dead(dealcommands.Durable, "m1", "update"))
}
