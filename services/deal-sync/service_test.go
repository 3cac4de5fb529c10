package dealsync_test

import (
	"slices"
	"testing"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealcommands"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealevents"
)

// The declaration validates, names exactly the consumers New registers,
// and allows every subject the service publishes.
func TestDeclaration(t *testing.T) {
	d := dealsync.Declaration
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	checkConsumers(t, d, dealevents.Spec(), dealcommands.Spec())
	for _, subj := range []string{
		eventbus.Change(dealevents.EntityType, "m1", change.SubjectToken("17")),
		eventbus.Outcome(dealevents.Durable, "m1"),
		eventbus.Dead(dealevents.Durable, "m1", dealevents.Events[0]),
		eventbus.Outcome(dealcommands.Durable, "m1"),
		eventbus.Dead(dealcommands.Durable, "m1", "update"),
	} {
		if !d.MayPublish(subj) {
			t.Errorf("publishes %s, not declared in %q", subj, d.Publishes)
		}
	}
}

func checkConsumers(t *testing.T, d svcdecl.Service, specs ...consumer.Spec) {
	t.Helper()
	var got []svcdecl.Consumer
	for _, s := range specs {
		s = s.WithDefaults()
		got = append(got, svcdecl.Consumer{Durable: s.Durable, Stream: s.Stream, FilterSubjects: s.FilterSubjects})
	}
	if !slices.EqualFunc(got, d.Consumers, func(a, b svcdecl.Consumer) bool {
		return a.Durable == b.Durable && a.Stream == b.Stream && slices.Equal(a.FilterSubjects, b.FilterSubjects)
	}) {
		t.Errorf("declared consumers %+v, the runtime registers %+v", d.Consumers, got)
	}
}
