package k8stest

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gen "github.com/b24hub/b24hub/tools/render"
	"github.com/moby/buildkit/frontend/dockerfile/dockerignore"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
)

// TestDockerfileParsesAndItsContextHoldsWhatItCopies reads the Dockerfile
// with BuildKit's own parser and linter (what `docker buildx build` runs
// first), then computes the build context its .dockerignore admits from
// the repository: every COPY source is in it, and nothing else is — no
// test, no test double's code, no file outside the modules the images need.
func TestDockerfileParsesAndItsContextHoldsWhatItCopies(t *testing.T) {
	path := filepath.Join(repoRoot, "deploy", "docker", "Dockerfile")
	df, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		t.Fatalf("deploy/docker/Dockerfile does not parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("deploy/docker/Dockerfile: parser warning: %s", w.Short)
	}
	var lint []string
	stages, _, err := instructions.Parse(res.AST, linter.New(&linter.Config{
		Warn: func(rule, _, _, msg string, loc []parser.Range) {
			lint = append(lint, fmt.Sprintf("%s: %s (line %v)", rule, msg, loc))
		},
	}))
	if err != nil {
		t.Fatalf("deploy/docker/Dockerfile: %v", err)
	}
	for _, l := range lint {
		t.Errorf("deploy/docker/Dockerfile: lint %s", l)
	}
	if len(stages) != 2 {
		t.Fatalf("deploy/docker/Dockerfile has %d stages, want build and final", len(stages))
	}
	final := stages[1]
	if final.BaseName != gen.FinalImage {
		t.Errorf("final stage FROM %s, want %s", final.BaseName, gen.FinalImage)
	}
	var user, entry bool
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User == "65532:65532"
		case *instructions.EntrypointCommand:
			entry = !c.PrependShell && len(c.CmdLine) == 1 && c.CmdLine[0] == gen.Binary
		case *instructions.RunCommand:
			t.Errorf("final stage runs %v: distroless has no shell", c.CmdLine)
		}
	}
	if !user || !entry {
		t.Errorf("final stage: USER 65532:65532 %v, exec-form ENTRYPOINT [%q] %v", user, gen.Binary, entry)
	}

	// The build context the .dockerignore admits.
	ignore, err := os.Open(path + ".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer ignore.Close()
	patterns, err := dockerignore.ReadAll(ignore)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	var context []string
	err = fs.WalkDir(os.DirFS(repoRoot), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == ".git" || p == ".bin" || p == "node_modules" {
				return fs.SkipDir
			}
			return nil
		}
		excluded, err := pm.MatchesOrParentMatches(p)
		if err != nil {
			return err
		}
		if !excluded {
			context = append(context, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mods, err := gen.ImageModules(os.DirFS(repoRoot), imageServices)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range context {
		var owner *gen.Module
		for i := range mods {
			if strings.HasPrefix(f, mods[i].Dir+"/") && (owner == nil || len(mods[i].Dir) > len(owner.Dir)) {
				owner = &mods[i]
			}
		}
		switch {
		case strings.HasSuffix(f, "_test.go"):
			t.Errorf("build context holds test %s", f)
		case owner == nil:
			t.Errorf("build context holds %s, which is in no module the images need", f)
		case owner.TestDouble && f != owner.Dir+"/go.mod" && f != owner.Dir+"/go.sum":
			t.Errorf("build context holds %s, code of test double %s", f, owner.Dir)
		}
	}
	t.Logf("build context: %d files", len(context))
	// Every COPY source of the build stage is in the context.
	for _, c := range stages[0].Commands {
		cp, ok := c.(*instructions.CopyCommand)
		if !ok || cp.From != "" {
			continue
		}
		for _, src := range cp.SourcePaths {
			var found bool
			for _, f := range context {
				found = found || f == src || (strings.HasSuffix(src, "/") && strings.HasPrefix(f, src))
			}
			if !found {
				t.Errorf("COPY %s: not in the build context .dockerignore admits", src)
			}
		}
	}
}
