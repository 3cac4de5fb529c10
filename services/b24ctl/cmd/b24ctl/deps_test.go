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
	// The binary's own dependency graph, by package: the services share one
	// module, so module paths cannot tell b24ctl from a service. Test-only
	// imports do not count.
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const self = "github.com/b24hub/b24hub/services/b24ctl"
	forbidden := []string{
		"github.com/b24hub/b24hub/services/",
		"github.com/b24hub/b24hub/libs/consumer",
		"github.com/b24hub/b24hub/libs/postgres",
		"github.com/b24hub/b24hub/libs/svcmain",
		"github.com/jackc/", // pgx, tern, puddle
		"gopkg.in/yaml.v3",  // archived; go.yaml.in/yaml/v3 is the maintained fork
	}
	seen := map[string]bool{}
	for _, pkg := range strings.Fields(string(out)) {
		seen[pkg] = true
	}
	if !seen[self+"/internal/cli"] {
		t.Fatalf("go list printed no package of b24ctl itself; the check sees nothing:\n%s", out)
	}
	for pkg := range seen {
		if pkg == self || strings.HasPrefix(pkg, self+"/") {
			continue
		}
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("b24ctl links %s; move the contract it needs into a library", pkg)
			}
		}
	}
}
