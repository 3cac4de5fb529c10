package k8stest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// versionVar is the variable release builds set with -ldflags -X (the
// Dockerfiles); libs/buildinfo documents it.
const versionVar = "github.com/b24hub/b24hub/libs/buildinfo.version"

// TestEveryBinaryAnswersVersion links every image's command with a version
// the way a release build does and runs `<command> version`: it must print
// its name and that version, without any dependency running.
func TestEveryBinaryAnswersVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("links every command; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	const version = "v9.9.9-k8stest"
	dir := t.TempDir()
	for _, name := range imageServices {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(repoRoot, "services", name)
			if _, err := os.Stat(filepath.Join(src, "cmd", name, "main.go")); err != nil {
				t.Skipf("services/%s/cmd/%s does not exist", name, name)
			}
			bin := filepath.Join(dir, name)
			build := exec.Command(goBin, "build", "-o", bin, "-ldflags", "-X "+versionVar+"="+version, "./cmd/"+name)
			build.Dir = src
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			cmd := exec.Command(bin, "version")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no B24HUB_ settings, no NATS, no database
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s version: %v\n%s", name, err, out)
			}
			if got := string(out); !strings.Contains(got, name) || !strings.Contains(got, version) {
				t.Errorf("%s version printed %q, want its name and %s", name, got, version)
			}
		})
	}
}
