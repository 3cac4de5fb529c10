package k8stest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// goWorkVersionRe is go.work's go line.
var goWorkVersionRe = regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)\s*$`)

// TestReadmeGoVersion: the README names the Go version go.work needs.
func TestReadmeGoVersion(t *testing.T) {
	m := goWorkVersionRe.FindSubmatch(readFile(t, "go.work"))
	if m == nil {
		t.Fatal("go.work has no go line")
	}
	if want := "Go " + string(m[1]) + " or newer"; !strings.Contains(string(readFile(t, "README.md")), want) {
		t.Errorf("README.md does not say %q (go.work needs go %s)", want, m[1])
	}
}

// TestReadmeAdminAddrUsers: the README's "Used by" for B24HUB_ADMIN_ADDR
// lists exactly the services whose code (or a library they use) reads it.
func TestReadmeAdminAddrUsers(t *testing.T) {
	const name = "B24HUB_ADMIN_ADDR"
	var usedBy string
	for _, line := range strings.Split(string(readFile(t, "README.md")), "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 3 && strings.TrimSpace(cells[1]) == "`"+name+"`" {
			usedBy = strings.TrimSpace(cells[2])
		}
	}
	if usedBy == "" {
		t.Fatalf("README.md: no configuration row for %s", name)
	}
	var listed []string
	for _, f := range strings.FieldsFunc(usedBy, func(r rune) bool { return r == ',' || r == ';' }) {
		listed = append(listed, strings.TrimSpace(f))
	}
	entries, err := os.ReadDir(filepath.Join(repoRoot, "services"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range entries {
		svc := e.Name()
		if svc == "devstack" || svc == "b24ctl" { // the local stack has its own row; the CLI serves nothing
			continue
		}
		f := serviceFacts(t, svc)
		if !f.Exists {
			continue
		}
		checked++
		reads := f.All[name]
		switch {
		case slices.Contains(listed, "all") && !reads:
			t.Errorf("README.md says every service reads %s, but services/%s does not", name, svc)
		case !slices.Contains(listed, "all") && reads != slices.Contains(listed, svc):
			t.Errorf("README.md lists %q as reading %s; services/%s reads it: %v", usedBy, name, svc, reads)
		}
	}
	if checked < 5 {
		t.Fatalf("only %d services checked", checked)
	}
}
