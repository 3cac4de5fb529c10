package k8stest

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// outsideRefs are spellings of paths outside the repository that a clone
// alone does not have: the design workspace's fixtures and reference, or
// anything relative to a sibling "shared" directory. Split so this file does
// not match itself.
var outsideRefs = []string{
	"../" + "shared",
	"/work/" + "shared",
	"shared/" + "fixtures",
	"shared/" + "reference",
}

// TestRepositoryIsSelfContained: no file in the repository points outside
// it. Tests that read a sibling directory fail in a clone that has none,
// and docs that point there point at nothing.
func TestRepositoryIsSelfContained(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var checked int
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// .git, .bin (tool binaries), .data (the local stack's state),
			// node_modules: not the repository's own files.
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.IndexByte(b, 0) >= 0 {
			return nil // binary
		}
		checked++
		rel, _ := filepath.Rel(root, p)
		for i, line := range strings.Split(string(b), "\n") {
			for _, ref := range outsideRefs {
				if strings.Contains(line, ref) {
					t.Errorf("%s:%d refers to %q, outside the repository: move what it needs into the repository (test data under testdata/ or libs/b24event/fixtures, Bitrix24 facts in docs/bitrix24.md)", rel, i+1, ref)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d files checked under %s: wrong repository root?", checked, root)
	}
}
