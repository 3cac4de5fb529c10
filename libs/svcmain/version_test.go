package svcmain_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/buildinfo"
	"github.com/b24hub/b24hub/libs/svcmain"
)

// TestVersion: `<service> version` prints the name and the build, needs no
// dependency (Serve is not called) and is listed in the usage.
func TestVersion(t *testing.T) {
	cmd := svcmain.Command{Name: "demo", Schema: "demo"} // nil Serve: calling it would panic
	var stdout bytes.Buffer
	if err := cmd.Run(context.Background(), []string{"version"}, func(string) string { return "" }, &stdout); err != nil {
		t.Fatal(err)
	}
	want := "demo " + buildinfo.Read().String() + "\n"
	if stdout.String() != want {
		t.Errorf("version printed %q, want %q", stdout.String(), want)
	}
	if !strings.Contains(stdout.String(), buildinfo.Version()) {
		t.Errorf("version output %q lacks the version %q", stdout.String(), buildinfo.Version())
	}
	if u := cmd.Usage(); !strings.Contains(u, "  version  ") {
		t.Errorf("usage does not list version:\n%s", u)
	}
	if err := cmd.Run(context.Background(), []string{"version", "extra"}, func(string) string { return "" }, &stdout); err == nil {
		t.Error("version with an extra argument was accepted")
	}
}

// TestMigrateRejectsABadPoolSize: a pool size that is not a number stops
// the command before it connects, naming the setting.
func TestMigrateRejectsABadPoolSize(t *testing.T) {
	cmd := svcmain.Command{Name: "demo", Schema: "demo"}
	env := map[string]string{"B24HUB_DATABASE_MAX_CONNS": "lots", "B24HUB_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	err := cmd.Run(context.Background(), []string{"migrate"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "B24HUB_DATABASE_MAX_CONNS") {
		t.Fatalf("migrate with a bad pool size: %v, want an error naming B24HUB_DATABASE_MAX_CONNS", err)
	}
}
