package ingress_test

import (
	"testing"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/ingress"
)

// The declaration validates and allows what the ingress publishes: raw
// events and install verification requests.
func TestDeclaration(t *testing.T) {
	d := ingress.Declaration
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{eventbus.RawEvent("m1", "ONCRMDEALUPDATE"), eventbus.ControlInstall} {
		if !d.MayPublish(subj) {
			t.Errorf("publishes %s, not declared in %q", subj, d.Publishes)
		}
	}
	if len(d.Consumers) != 0 || d.Database != nil || d.PortalClient {
		t.Errorf("the ingress reads no stream, owns no schema and calls no portal: %+v", d)
	}
}
