package proto

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates the Go code into a temp dir and
// compares it with the committed files, so a .proto edit without
// `task proto` fails the build.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	bin, err := filepath.Abs("../.bin")
	if err != nil {
		t.Fatal(err)
	}
	buf := filepath.Join(bin, "buf")
	if _, err := os.Stat(buf); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("buf not installed at %s (run `go tool task tools`): %v", buf, err)
		}
		t.Skipf("buf not installed at %s; run `go tool task tools`", buf)
	}
	out := t.TempDir()
	cmd := exec.Command(buf, "generate", "--output", out)
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, msg)
	}
	want := map[string][]byte{}
	err = filepath.WalkDir(filepath.Join(out, "gen"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		want[rel], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	err = filepath.WalkDir("gen", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		got[p], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s is not committed; run `go tool task proto`", p)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s differs from the .proto files; run `go tool task proto`", p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s is stale (no .proto generates it); run `go tool task proto`", p)
		}
	}
}
