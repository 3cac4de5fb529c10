package telephony_test

import (
	"slices"
	"testing"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/services/telephony"
	"github.com/b24hub/b24hub/services/telephony/internal/consumer/callend"
)

// The declaration validates, names exactly the consumers New registers,
// and allows every subject the service publishes.
func TestDeclaration(t *testing.T) {
	d := telephony.Declaration
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	checkConsumers(t, d, callend.Spec())
	for _, subj := range []string{
		eventbus.Change(callend.EntityType, "m1", change.SubjectToken("call.1/2")),
		eventbus.Outcome(callend.Durable, "m1"),
		eventbus.Dead(callend.Durable, "m1", callend.Event),
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
