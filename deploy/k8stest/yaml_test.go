package k8stest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// archivedYAML is the YAML module that is no longer maintained; the
// workspace uses its maintained continuation, go.yaml.in/yaml/v3, with the
// same API. Dependencies may still pull it in indirectly.
const archivedYAML = "gopkg.in/yaml.v3"

// workspaceModules returns the module directories go.work uses,
// repository-relative.
func workspaceModules(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := modfile.ParseWork("go.work", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range w.Use {
		out = append(out, filepath.ToSlash(filepath.Clean(u.Path)))
	}
	if len(out) == 0 {
		t.Fatal("go.work uses no module")
	}
	return out
}

// TestOneYAMLLibrary fails when a workspace module requires or imports the
// archived gopkg.in/yaml.v3 itself, instead of go.yaml.in/yaml/v3.
func TestOneYAMLLibrary(t *testing.T) {
	for _, dir := range workspaceModules(t) {
		data, err := os.ReadFile(filepath.Join(repoRoot, dir, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := modfile.Parse(dir+"/go.mod", data, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Require {
			if r.Mod.Path == archivedYAML && !r.Indirect {
				t.Errorf("%s/go.mod requires %s directly; use go.yaml.in/yaml/v3", dir, archivedYAML)
			}
		}
		root := filepath.Join(repoRoot, dir)
		err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && p != root {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir // a module of its own
				}
				return nil
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") {
				return nil
			}
			src, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range src.Imports {
				if path, _ := strconv.Unquote(imp.Path.Value); path == archivedYAML {
					t.Errorf("%s imports %s; use go.yaml.in/yaml/v3", p, archivedYAML)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
