package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoService keeps the CLI a client: it talks to the services over
// NATS and HTTP and must not link one, with its database driver, migrations
// and consumer runtime. The contracts it needs live in libraries
// (libs/eventbus, proto). It links one YAML library, the maintained one.
func TestLinksNoService(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	// The binary's own dependency graph: test-only imports do not count.
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/b24hub/b24hub/services/",
		"github.com/b24hub/b24hub/libs/consumer",
		"github.com/b24hub/b24hub/libs/postgres",
		"github.com/b24hub/b24hub/libs/svcmain",
		"github.com/jackc/", // pgx, tern, puddle
		"gopkg.in/yaml.v3",  // archived; go.yaml.in/yaml/v3 is the maintained fork
	}
	seen := map[string]bool{}
	for _, mod := range strings.Fields(string(out)) {
		seen[mod] = true
	}
	if !seen["github.com/b24hub/b24hub/services/b24ctl"] {
		t.Fatalf("go list printed no module of b24ctl itself; the check sees nothing:\n%s", out)
	}
	for mod := range seen {
		if mod == "github.com/b24hub/b24hub/services/b24ctl" {
			continue
		}
		for _, f := range forbidden {
			if strings.HasPrefix(mod, f) {
				t.Errorf("b24ctl links %s; move the contract it needs into a library", mod)
			}
		}
	}
}
