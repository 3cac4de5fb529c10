package k8stest

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/modfile"

	gen "github.com/b24hub/b24hub/tools/render"
)

// module is one Go module of the workspace, by its directory relative to the
// repository root (e.g. "services/ingress", "libs/eventbus").
type module struct {
	Dir  string
	Path string
	// Replaces are the workspace modules its go.mod replaces with local
	// directories, as repository-relative directories.
	Replaces []string
	HasSum   bool
}

var (
	modMu    sync.Mutex
	modCache = map[string]*module{}
)

func loadModule(t *testing.T, dir string) *module {
	t.Helper()
	modMu.Lock()
	defer modMu.Unlock()
	if m, ok := modCache[dir]; ok {
		return m
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, dir, "go.mod"))
	if err != nil {
		t.Fatalf("module %s: %v", dir, err)
	}
	f, err := modfile.Parse(filepath.Join(dir, "go.mod"), data, nil)
	if err != nil {
		t.Fatalf("module %s: %v", dir, err)
	}
	m := &module{Dir: dir, Path: f.Module.Mod.Path}
	for _, r := range f.Replace {
		if !modfile.IsDirectoryPath(r.New.Path) {
			continue
		}
		m.Replaces = append(m.Replaces, filepath.ToSlash(filepath.Clean(filepath.Join(dir, r.New.Path))))
	}
	_, err = os.Stat(filepath.Join(repoRoot, dir, "go.sum"))
	m.HasSum = err == nil
	modCache[dir] = m
	return m
}

// closure is dir plus every module reachable through local replace
// directives, transitively: exactly the directories a GOWORK=off build of
// dir needs. Sorted, dir first.
func closure(t *testing.T, dir string) []string {
	t.Helper()
	seen := map[string]bool{dir: true}
	queue := []string{dir}
	for len(queue) > 0 {
		m := loadModule(t, queue[0])
		queue = queue[1:]
		for _, r := range m.Replaces {
			if !seen[r] {
				seen[r] = true
				queue = append(queue, r)
			}
		}
	}
	delete(seen, dir)
	rest := make([]string, 0, len(seen))
	for d := range seen {
		rest = append(rest, d)
	}
	sort.Strings(rest)
	return append([]string{dir}, rest...)
}

// goFiles returns the non-test .go files under a module directory, skipping
// nested modules and testdata.
func goFiles(t *testing.T, dir string) []string {
	t.Helper()
	root := filepath.Join(repoRoot, dir)
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if p != root {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

var (
	quotedEnvRe = regexp.MustCompile(`"(B24HUB_[A-Z0-9_]+)"`)
	otelEnvRe   = regexp.MustCompile(`\b(OTEL_[A-Z0-9_]+)\b`)
)

// codeFacts is what the Go source of one service (its module and every
// module it replaces) says about its configuration.
type codeFacts struct {
	Service string
	Exists  bool            // the service has a cmd/<name>/main.go
	Own     map[string]bool // B24HUB_ names quoted in the service's own module
	All     map[string]bool // B24HUB_ names quoted anywhere in the closure
	OTEL    map[string]bool // OTEL_ names mentioned in the closure (the SDK reads them)
	Text    string          // every non-test source file of the closure, concatenated
	OwnText string          // the service module's own non-test source
	// CommandText is OwnText plus, when the service runs on libs/svcmain
	// (a svcmain.Command or svcmain.Service), its command line: the
	// subcommands ("migrate") the service answers to are defined there.
	CommandText string
}

var (
	factsMu    sync.Mutex
	factsCache = map[string]codeFacts{}
)

func serviceFacts(t *testing.T, name string) codeFacts {
	t.Helper()
	factsMu.Lock()
	defer factsMu.Unlock()
	if f, ok := factsCache[name]; ok {
		return f
	}
	f := scanService(t, name)
	factsCache[name] = f
	return f
}

// moduleExists reports whether a workspace module directory has a go.mod.
func moduleExists(dir string) bool {
	_, err := os.Stat(filepath.Join(repoRoot, dir, "go.mod"))
	return err == nil
}

func scanService(t *testing.T, name string) codeFacts {
	t.Helper()
	dir := "services/" + name
	f := codeFacts{Service: name, Own: map[string]bool{}, All: map[string]bool{}, OTEL: map[string]bool{}}
	if _, err := os.Stat(filepath.Join(repoRoot, dir)); err != nil {
		return f
	}
	if _, err := os.Stat(filepath.Join(repoRoot, dir, "cmd", name, "main.go")); err == nil {
		f.Exists = true
	}
	// The service's own directory, plus every module its module replaces
	// except its module itself (the services module holds every service).
	modDir, err := gen.ModuleDir(os.DirFS(repoRoot), dir)
	if err != nil {
		t.Fatal(err)
	}
	var all, own strings.Builder
	for _, d := range closure(t, modDir) {
		if d == modDir {
			d = dir
		}
		for _, p := range goFiles(t, d) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			all.Write(b)
			if d == dir {
				own.Write(b)
			}
		}
	}
	f.Text, f.OwnText = all.String(), own.String()
	f.CommandText = f.OwnText
	if strings.Contains(f.OwnText, "svcmain.Command{") || strings.Contains(f.OwnText, "svcmain.Service{") {
		b, err := os.ReadFile(filepath.Join(repoRoot, "libs", "svcmain", "svcmain.go"))
		if err != nil {
			t.Fatal(err)
		}
		f.CommandText += string(b)
	}
	for _, m := range quotedEnvRe.FindAllStringSubmatch(f.Text, -1) {
		f.All[m[1]] = true
	}
	for _, m := range quotedEnvRe.FindAllStringSubmatch(f.OwnText, -1) {
		f.Own[m[1]] = true
	}
	for _, m := range otelEnvRe.FindAllStringSubmatch(f.Text, -1) {
		f.OTEL[m[1]] = true
	}
	return f
}

// reads reports whether the service's code reads the environment variable.
// A NAME_FILE variable counts when NAME is read and the code builds "_FILE"
// variants.
func (f codeFacts) reads(name string) bool {
	switch {
	case strings.HasPrefix(name, "B24HUB_"):
		if f.All[name] {
			return true
		}
		if base, ok := strings.CutSuffix(name, "_FILE"); ok && f.All[base] && strings.Contains(f.Text, `"_FILE"`) {
			return true
		}
		// Prefix-built names: "B24HUB_DEALSYNC_" + "ACK_WAIT" (consumer tuning).
		for lit := range f.All {
			if rest, ok := strings.CutPrefix(name, lit); ok && strings.HasSuffix(lit, "_") && strings.Contains(f.Text, `"`+rest+`"`) {
				return true
			}
		}
		return false
	case strings.HasPrefix(name, "OTEL_"):
		return f.OTEL[name]
	case name == "GOMEMLIMIT" || name == "GOMAXPROCS" || name == "GODEBUG":
		return true // the Go runtime
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
