package render

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
)

const (
	dockerfilePath = "deploy/docker/Dockerfile"
	// BuildinfoVersion is the variable the Dockerfile sets to the image's
	// version at link time (libs/buildinfo).
	BuildinfoVersion = "github.com/b24hub/b24hub/libs/buildinfo.version"
	buildinfoDir     = "libs/buildinfo"
	goImage          = "golang:1.26"
	// FinalImage is the base every image runs on.
	FinalImage = "gcr.io/distroless/static-debian12:nonroot"
	// Binary is where the service's binary is in every image.
	Binary = "/usr/local/bin/b24hub"
)

// Module is a workspace module an image build needs, by its
// repository-relative directory.
type Module struct {
	Dir    string
	HasSum bool
	// TestDouble: a module only tests need (fakeportal, natstest, pgtest,
	// …test). Its go.mod is copied (a GOWORK=off build reads the go.mod of
	// every replace target in the module graph) but never its code.
	TestDouble bool
}

// IsTestDouble reports whether a module directory holds test doubles:
// libs/fakeportal or a directory whose name ends in "test".
func IsTestDouble(dir string) bool {
	base := path.Base(dir)
	return base == "fakeportal" || strings.HasSuffix(base, "test")
}

// ImageModules returns, sorted by directory, every module a GOWORK=off
// build of the given images (services/<name>) reads: the module holding
// each service plus its go.mod replace targets, transitively.
func ImageModules(repo fs.FS, images []string) ([]Module, error) {
	seen := map[string]bool{}
	var queue []string
	for _, name := range images {
		dir, err := ModuleDir(repo, "services/"+name)
		if err != nil {
			return nil, err
		}
		if !seen[dir] {
			seen[dir] = true
			queue = append(queue, dir)
		}
	}
	var mods []Module
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		data, err := fs.ReadFile(repo, dir+"/go.mod")
		if err != nil {
			return nil, fmt.Errorf("render: module %s: %w", dir, err)
		}
		f, err := modfile.Parse(dir+"/go.mod", data, nil)
		if err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		_, err = fs.Stat(repo, dir+"/go.sum")
		mods = append(mods, Module{Dir: dir, HasSum: err == nil, TestDouble: IsTestDouble(dir)})
		for _, r := range f.Replace {
			if !modfile.IsDirectoryPath(r.New.Path) {
				continue
			}
			target := path.Clean(path.Join(dir, r.New.Path))
			if !seen[target] {
				seen[target] = true
				queue = append(queue, target)
			}
		}
	}
	slices.SortFunc(mods, func(a, b Module) int { return strings.Compare(a.Dir, b.Dir) })
	return mods, nil
}

// ModuleDir returns the directory of the module holding dir: dir itself when
// it has a go.mod (a consumer generated as a module of its own), else the
// nearest parent with one (services/<name> in the services module).
func ModuleDir(repo fs.FS, dir string) (string, error) {
	for d := path.Clean(dir); ; d = path.Dir(d) {
		if _, err := fs.Stat(repo, d+"/go.mod"); err == nil {
			return d, nil
		}
		if d == "." || d == "/" {
			return "", fmt.Errorf("render: no go.mod holds %s", dir)
		}
	}
}

type dockerData struct {
	Images                []string
	Modules               []Module
	GoImage, FinalImage   string
	Binary, VersionSymbol string
	TestDoubles           []string
}

func dockerFiles(repo fs.FS, vs []*view) ([]File, error) {
	images := imageNames(vs)
	mods, err := ImageModules(repo, images)
	if err != nil {
		return nil, err
	}
	d := dockerData{Images: images, Modules: mods, GoImage: goImage, FinalImage: FinalImage, Binary: Binary}
	buildinfoMod, _ := ModuleDir(repo, buildinfoDir)
	for _, m := range mods {
		if _, err := fs.Stat(repo, buildinfoDir); err == nil && m.Dir == buildinfoMod {
			d.VersionSymbol = BuildinfoVersion
		}
		if m.TestDouble {
			d.TestDoubles = append(d.TestDoubles, m.Dir)
		}
	}
	df, err := execute("Dockerfile.tmpl", d)
	if err != nil {
		return nil, err
	}
	ignore, err := execute("Dockerfile.dockerignore.tmpl", d)
	if err != nil {
		return nil, err
	}
	return []File{{Path: dockerfilePath, Data: df}, {Path: dockerfilePath + ".dockerignore", Data: ignore}}, nil
}
