package svcmain_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/svcmain"
)

// A Service's command takes its name and schema from the declaration; a
// service without a database has nothing to migrate and says so.
func TestServiceCommand(t *testing.T) {
	withDB := svcmain.Service{Declaration: svcdecl.Service{Name: "contacts", Summary: "x", Role: svcdecl.RoleConsumer,
		Database: &svcdecl.Database{Schema: "contacts", Migrations: fstest.MapFS{"001_init.sql": {Data: []byte("select 1")}}}}}
	c := withDB.Command()
	if c.Name != "contacts" || c.Schema != "contacts" || c.Migrate == nil || !strings.Contains(c.Usage(), "(schema contacts)") {
		t.Fatalf("command %+v", c)
	}
	noDB := svcmain.Service{Declaration: svcdecl.Service{Name: "edge", Summary: "x", Role: svcdecl.RoleEdge}}
	c = noDB.Command()
	if c.Schema != "" || c.Migrate != nil || !strings.Contains(c.Usage(), "owns no database schema") {
		t.Fatalf("command %+v\n%s", c, c.Usage())
	}
	var out bytes.Buffer
	if err := c.Run(context.Background(), []string{"migrate"}, func(string) string { return "" }, &out); err != nil || !strings.Contains(out.String(), "nothing to migrate") {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
}

// An invalid declaration stops the service before anything is opened.
func TestServeRejectsAnInvalidDeclaration(t *testing.T) {
	s := svcmain.Service{Declaration: svcdecl.Service{Name: "Bad_Name"}}
	err := s.Command().Run(context.Background(), nil, func(string) string { return "" }, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "DNS label") {
		t.Fatalf("err = %v", err)
	}
}
