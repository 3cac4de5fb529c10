package catalog_test

import (
	"testing"

	"github.com/b24hub/b24hub/services/catalog"
)

// Every declaration is valid, and names, durable consumers and schemas are
// unique across the catalog.
func TestAllValidates(t *testing.T) {
	if err := catalog.All.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(catalog.All) == 0 {
		t.Fatal("the catalog is empty")
	}
}
