package svcmain_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/svcmain"
)

// TestRunAndExitCode: no argument serves, help prints the usage with
// status 0, a failing serve is status 1 with the program name, anything
// else is status 2 with the usage.
func TestRunAndExitCode(t *testing.T) {
	served := 0
	cmd := svcmain.Command{
		Name: "demo", Schema: "demo",
		Serve: func(context.Context, func(string) string, io.Writer) error {
			served++
			return errors.New("boom")
		},
	}
	for _, tt := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, 1, "", "demo: boom\n"},
		{[]string{"--help"}, 0, "usage: demo [migrate | version]", ""},
		{[]string{"migrate", "now"}, 2, "", "demo: unexpected arguments [\"migrate\" \"now\"]\n\nusage: demo [migrate | version]"},
	} {
		var stdout, stderr bytes.Buffer
		err := cmd.Run(context.Background(), tt.args, func(string) string { return "" }, &stdout)
		if code := cmd.ExitCode(err, &stderr); code != tt.code {
			t.Errorf("%q: exit %d, want %d", tt.args, code, tt.code)
		}
		if !strings.HasPrefix(stdout.String(), tt.stdout) || !strings.HasPrefix(stderr.String(), tt.stderr) {
			t.Errorf("%q: stdout %q, stderr %q", tt.args, stdout.String(), stderr.String())
		}
	}
	if served != 1 {
		t.Errorf("served %d times, want 1", served)
	}
}

// TestUsage: the usage names the schema and the service's README.
func TestUsage(t *testing.T) {
	u := svcmain.Command{Name: "deal-sync", Schema: "deal_sync"}.Usage()
	for _, want := range []string{"services/deal-sync/README.md", "(schema deal_sync)"} {
		if !strings.Contains(u, want) {
			t.Errorf("usage lacks %q:\n%s", want, u)
		}
	}
}
