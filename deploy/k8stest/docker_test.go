package k8stest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gen "github.com/b24hub/b24hub/tools/render"
)

// copiedModules reads a Dockerfile's COPY sources (not --from) and returns
// the module directories whose whole tree is copied, and those whose go.mod
// is copied.
func copiedModules(dockerfile []byte) (trees, gomods []string) {
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		for _, src := range f[1 : len(f)-1] {
			switch {
			case strings.HasSuffix(src, "/go.mod"):
				gomods = append(gomods, strings.TrimSuffix(src, "/go.mod"))
			case strings.HasSuffix(src, "/"):
				trees = append(trees, strings.TrimSuffix(src, "/"))
			}
		}
	}
	slices.Sort(trees)
	slices.Sort(gomods)
	return trees, gomods
}

// TestDockerfile: the one Dockerfile copies the go.mod of every module a
// GOWORK=off build of the images reads (each image's service and its
// replace targets, transitively), the code of exactly the production ones
// among them (never a test double's), builds the SERVICE build argument's
// command statically onto a non-root distroless base with the version
// linked in, and labels the image.
func TestDockerfile(t *testing.T) {
	got, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatalf("%v (generate it: go tool task render)", err)
	}
	mods, err := gen.ImageModules(os.DirFS(repoRoot), imageServices)
	if err != nil {
		t.Fatal(err)
	}
	var wantTrees, wantMods []string
	for _, m := range mods {
		wantMods = append(wantMods, m.Dir)
		if !m.TestDouble {
			wantTrees = append(wantTrees, m.Dir)
		}
	}
	trees, gomods := copiedModules(got)
	if !slices.Equal(trees, wantTrees) {
		t.Errorf("deploy/docker/Dockerfile copies module trees %v, want %v (the production modules the images need); run go tool task render", trees, wantTrees)
	}
	if !slices.Equal(gomods, wantMods) {
		t.Errorf("deploy/docker/Dockerfile copies go.mod of %v before go mod download, want %v", gomods, wantMods)
	}
	for _, tree := range trees {
		if gen.IsTestDouble(tree) {
			t.Errorf("deploy/docker/Dockerfile copies the code of test double %s into the build", tree)
		}
	}
	for _, must := range []string{
		"GOWORK=off", "CGO_ENABLED=0", "FROM " + gen.FinalImage, "USER 65532:65532", "ARG SERVICE",
		"./cmd/${SERVICE}", "-X " + gen.BuildinfoVersion + "=${VERSION}",
		`org.opencontainers.image.version="${VERSION}"`, `org.opencontainers.image.revision="${REVISION}"`,
		`org.opencontainers.image.source=`, `org.opencontainers.image.title=`,
		`ENTRYPOINT ["` + gen.Binary + `"]`,
	} {
		if !bytes.Contains(got, []byte(must)) {
			t.Errorf("deploy/docker/Dockerfile lacks %q", must)
		}
	}
	// The -X target must exist, or the linker silently sets nothing.
	src, err := os.ReadFile(filepath.Join(repoRoot, "libs", "buildinfo", "buildinfo.go"))
	if err != nil || !bytes.Contains(src, []byte("\nvar version string")) {
		t.Errorf("libs/buildinfo/buildinfo.go no longer declares `var version string`, which the Dockerfile sets with -X %s", gen.BuildinfoVersion)
	}
}

// TestImagesImportNoTestDoubles: no image's command imports a package of a
// test-double module (which the Dockerfile does not copy), checked with
// `go list -deps` as the image builds it (GOWORK=off).
func TestImagesImportNoTestDoubles(t *testing.T) {
	if testing.Short() {
		t.Skip("go list of every image is skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range imageServices {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(goBin, "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "./cmd/"+name)
			cmd.Dir = filepath.Join(repoRoot, "services", name)
			cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false -mod=readonly")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps ./cmd/%s in services/%s: %v\n%s", name, name, err, out)
			}
			for _, mod := range strings.Fields(string(out)) {
				if dir, ok := strings.CutPrefix(mod, "github.com/b24hub/b24hub/"); ok && gen.IsTestDouble(dir) {
					t.Errorf("services/%s/cmd/%s imports a package of test double %s: production code must not (the image does not even copy it)", name, name, dir)
				}
			}
		})
	}
}

// TestEveryServiceShips: every module under services/ with a command
// (cmd/<name>/main.go; the local stack has none) but the b24ctl CLI is
// declared in services/catalog, so its image, manifests and the rest are
// generated; and every declared service has its command.
func TestEveryServiceShips(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(repoRoot, "services"))
	if err != nil {
		t.Fatal(err)
	}
	deployed := map[string]bool{}
	for _, s := range services {
		deployed[s.Name] = true
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(repoRoot, "services", name, "cmd", name, "main.go")); err != nil {
			continue
		}
		if name != "b24ctl" && !deployed[name] {
			t.Errorf("services/%s has a command but is not declared: list its Declaration in services/catalog, then run go tool task render (docs/adding-a-consumer.md)", name)
		}
		delete(deployed, name)
	}
	for name := range deployed {
		t.Errorf("services/catalog declares %s, but services/%s/cmd/%s/main.go does not exist: its image could not be built", name, name, name)
	}
}

// TestCrossCompile builds every service's command the way the Dockerfile
// does (GOWORK=off, CGO_ENABLED=0) for linux/amd64 and linux/arm64. This
// catches a go.mod/go.sum that only works inside the workspace, and any cgo
// dependency. Every command of an architecture is built by one go build in
// the services module (the module the Dockerfile builds each from): one
// package load and one schedule of the shared compile work instead of one
// per service, which on a loaded two-core machine was most of the package's
// 20-minute test budget.
func TestCrossCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiling is skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, name := range imageServices {
		if _, err := os.Stat(filepath.Join(repoRoot, "services", name, "cmd", name, "main.go")); err != nil {
			t.Run(name, func(t *testing.T) { t.Skipf("services/%s/cmd/%s does not exist yet", name, name) })
			continue
		}
		cmds = append(cmds, "./"+name+"/cmd/"+name)
	}
	if len(cmds) == 0 {
		t.Fatal("no service command to build")
	}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			start := time.Now()
			// Several main packages: each is compiled and linked, the
			// binaries are discarded.
			cmd := exec.Command(goBin, append([]string{"build", "-trimpath"}, cmds...)...)
			cmd.Dir = filepath.Join(repoRoot, "services")
			cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch,
				"GOFLAGS=-buildvcs=false -mod=readonly")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("GOWORK=off CGO_ENABLED=0 GOOS=linux GOARCH=%s go build %s in services failed: %v\n%s", arch, strings.Join(cmds, " "), err, out)
			}
			t.Logf("%d service commands for linux/%s: %s", len(cmds), arch, time.Since(start).Round(time.Millisecond))
		})
	}
}
