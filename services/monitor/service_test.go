package monitor_test

import (
	"testing"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/b24hub/b24hub/services/monitor/internal/ingest"
)

// The declaration validates, names exactly the ledger's consumers, and
// allows the replays the monitor publishes.
func TestDeclaration(t *testing.T) {
	d := monitor.Declaration
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	specs := []ingest.Spec{ingest.LedgerSpec, ingest.OutcomesSpec, ingest.DeadSpec}
	if len(d.Consumers) != len(specs) {
		t.Fatalf("declared consumers %+v, the monitor runs %+v", d.Consumers, specs)
	}
	for i, s := range specs {
		c := d.Consumers[i]
		if c.Durable != s.Durable || c.Stream != s.Stream || len(c.FilterSubjects) != 1 || c.FilterSubjects[0] != s.Filter {
			t.Errorf("declared consumer %+v, the monitor runs %+v", c, s)
		}
	}
	if subj := eventbus.RawEvent("m1", "ONCRMDEALUPDATE"); !d.MayPublish(subj) {
		t.Errorf("replays publish %s, not declared in %q", subj, d.Publishes)
	}
	if d.Ports[0].Env != "B24HUB_MONITOR_ADDR" {
		t.Errorf("port env %s", d.Ports[0].Env)
	}
}
