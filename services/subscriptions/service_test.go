package subscriptions_test

import (
	"slices"
	"testing"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/subscriptions"
)

// The declaration validates, names the lifecycle consumer the leader
// registers, and allows every subject the service publishes and serves.
func TestDeclaration(t *testing.T) {
	d := subscriptions.Declaration
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	spec := subscriptions.LifecycleSpec().WithDefaults()
	if len(d.Consumers) != 1 || d.Consumers[0].Durable != spec.Durable || d.Consumers[0].Stream != spec.Stream ||
		!slices.Equal(d.Consumers[0].FilterSubjects, spec.FilterSubjects) {
		t.Errorf("declared consumers %+v, the leader registers %s on %s %q", d.Consumers, spec.Durable, spec.Stream, spec.FilterSubjects)
	}
	for _, subj := range []string{
		eventbus.RawEvent("m1", "ONCRMDEALUPDATE"), // offline and reconciled events
		eventbus.Outcome(spec.Durable, "m1"),
		eventbus.Dead(spec.Durable, "m1", "ONAPPINSTALL"),
	} {
		if !d.MayPublish(subj) {
			t.Errorf("publishes %s, not declared in %q", subj, d.Publishes)
		}
	}
	for _, subj := range []string{eventbus.ControlInstall, eventbus.ControlSubscriptionsDiff, eventbus.ControlSubscriptionsApply} {
		if !slices.Contains(d.Subscribes, subj) {
			t.Errorf("serves %s, not declared in %q", subj, d.Subscribes)
		}
	}
	if !d.WithDefaults().Scaling.Singleton {
		t.Error("the lease makes the service a singleton; the declaration says otherwise")
	}
}
