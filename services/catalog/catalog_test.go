package catalog_test

import (
	"testing"

	"github.com/b24hub/b24hub/services/catalog"
)

// Every declaration is valid, names, durable consumers and schemas are
// unique across the catalog, and every service can start.
func TestAllValidates(t *testing.T) {
	if err := catalog.All.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(catalog.All) == 0 || len(catalog.All) != len(catalog.Services) {
		t.Fatalf("%d declarations for %d services", len(catalog.All), len(catalog.Services))
	}
	for i, s := range catalog.Services {
		if s.Start == nil {
			t.Errorf("service %s has no Start", s.Declaration.Name)
		}
		if catalog.All[i].Name != s.Declaration.Name {
			t.Errorf("All[%d] is %s, Services[%d] is %s", i, catalog.All[i].Name, i, s.Declaration.Name)
		}
	}
}
