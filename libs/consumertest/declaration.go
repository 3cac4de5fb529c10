package consumertest

import (
	"slices"
	"testing"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/svcdecl"
)

// Declaration checks a consumer service's declaration against its runtime:
// it validates, names exactly the durable consumers specs describe (the
// specs New registers, defaults applied), and allows every subject in
// publishes (samples of what the service publishes, built with the
// eventbus subject functions).
func Declaration(t *testing.T, d svcdecl.Service, specs []consumer.Spec, publishes ...string) {
	t.Helper()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
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
	for _, subj := range publishes {
		if !d.MayPublish(subj) {
			t.Errorf("publishes %s, not declared in %q", subj, d.Publishes)
		}
	}
}
