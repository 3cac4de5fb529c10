package k8stest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gen "github.com/b24hub/b24hub/tools/render"
)

// testDoubleModules are the modules that exist for tests only: an embedded
// nats-server, throw-away PostgreSQL databases, the fake Bitrix24 portal
// and the consumer conformance suite.
var testDoubleModules = []string{
	"github.com/nats-io/nats-server/v2",
	"github.com/b24hub/b24hub/libs/natstest",
	"github.com/b24hub/b24hub/libs/pgtest",
	"github.com/b24hub/b24hub/libs/fakeportal",
	"github.com/b24hub/b24hub/libs/consumertest",
}

// testDoubleExceptions are production modules known to still link a test
// double, with the reason. Each must be fixed rather than added to; an
// entry that no longer applies fails the test, so the list only shrinks.
var testDoubleExceptions = map[string]string{}

// isTestDoubleDir reports whether a module directory is a test double
// itself (the render's rule, which copies only their go.mod into images)
// or the local stack, which runs the fake portal on purpose.
func isTestDoubleDir(dir string) bool {
	return gen.IsTestDouble(dir) || dir == "services/devstack"
}

// productionModules are the services and libraries whose packages ship:
// every directory under services/ and libs/ (a package tree of the libs or
// services module, or a module of its own) except test doubles and the
// local stack.
func productionModules(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, parent := range []string{"services", "libs"} {
		entries, err := os.ReadDir(filepath.Join(repoRoot, parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			dir := parent + "/" + e.Name()
			if e.IsDir() && len(goFiles(t, dir)) > 0 && !isTestDoubleDir(dir) {
				out = append(out, dir)
			}
		}
	}
	return out
}

// TestProductionModulesLinkNoTestDoubles: the packages of a production
// service or library (its tests aside) must not import nats-server or a test-double
// module, directly or through another module, so images built from them
// (GOWORK=off, as released) contain no test code and their Dockerfiles
// need only the go.mod of a test double, never its sources. It asks the go
// command for each module's package graph, as a GOWORK=off build sees it.
func TestProductionModulesLinkNoTestDoubles(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	for _, dir := range productionModules(t) {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "./...")
			cmd.Dir = filepath.Join(repoRoot, dir)
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps in %s: %v\n%s", dir, err, out)
			}
			var linked []string
			for _, mod := range strings.Fields(string(out)) {
				if slices.Contains(testDoubleModules, mod) && !slices.Contains(linked, mod) {
					linked = append(linked, mod)
				}
			}
			why, excepted := testDoubleExceptions[dir]
			switch {
			case len(linked) > 0 && !excepted:
				t.Errorf("%s links test doubles %v into its packages: move the code that needs them into a _test.go file or a *test module", dir, linked)
			case len(linked) == 0 && excepted:
				t.Errorf("%s no longer links a test double: remove it from testDoubleExceptions (%s)", dir, why)
			case excepted:
				t.Logf("known exception: %s", why)
			}
		})
	}
}

// TestTestDoubleDetection keeps the selection honest: the modules the
// check must cover are selected, the test doubles are not.
func TestTestDoubleDetection(t *testing.T) {
	prod := productionModules(t)
	for _, want := range []string{"libs/consumer", "libs/eventbus", "services/ingress"} {
		if _, err := os.Stat(filepath.Join(repoRoot, want)); err == nil && !slices.Contains(prod, want) {
			t.Errorf("%s is not checked", want)
		}
	}
	for _, not := range []string{"libs/natstest", "libs/pgtest", "libs/fakeportal", "libs/consumertest", "services/devstack"} {
		if slices.Contains(prod, not) {
			t.Errorf("%s is checked as a production module", not)
		}
	}
}
