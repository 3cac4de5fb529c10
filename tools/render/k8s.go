package render

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"text/template"

	"github.com/b24hub/b24hub/libs/svcdecl"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"header": func(v *view) string {
		return header("the " + v.Name + " declaration (services/catalog)")
	},
	"headerAll":       func() string { return header("the service declarations (services/catalog)") },
	"adminPort":       func() int { return svcdecl.AdminPort },
	"shutdownTimeout": func() string { return shutdownTimeout },
	"withDatabase":    withDatabase,
	"join":            strings.Join,
	"comment":         comment,
}).ParseFS(templateFS, "templates/*.tmpl"))

func execute(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("render: %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// perService are the manifests every service gets, by file name; hpa.yaml
// only when the service is autoscaled.
var perService = []string{"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "serviceaccount.yaml"}

const (
	baseKustomization = "k8s/base/kustomization.yaml"
	migrateJobs       = "k8s/base/jobs/migrate.yaml"
)

// overlayKustomizations get the images fragment with their own tag.
var overlayKustomizations = []string{"k8s/overlays/dev/kustomization.yaml", "k8s/overlays/prod/kustomization.yaml"}

func kubernetesFiles(repo fs.FS, vs []*view) ([]File, error) {
	var files []File
	var resources strings.Builder
	for _, v := range vs {
		for _, name := range perService {
			if name == "hpa.yaml" && !v.Autoscaled {
				continue
			}
			data, err := execute(name+".tmpl", v)
			if err != nil {
				return nil, err
			}
			p := "k8s/base/" + v.Name + "/" + name
			files = append(files, File{Path: p, Data: data})
			fmt.Fprintf(&resources, "  - %s\n", strings.TrimPrefix(p, "k8s/base/"))
		}
	}
	for _, whole := range []struct{ path, tmpl string }{
		{"k8s/base/common/networkpolicy.yaml", "networkpolicy.yaml.tmpl"},
		{"k8s/components/monitoring/servicemonitors.yaml", "servicemonitors.yaml.tmpl"},
		{migrateJobs, "migrate.yaml.tmpl"},
	} {
		if whole.path == migrateJobs && len(withDatabase(vs)) == 0 {
			continue
		}
		data, err := execute(whole.tmpl, vs)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: whole.path, Data: data})
	}
	if len(withDatabase(vs)) > 0 {
		fmt.Fprintf(&resources, "  - %s\n", strings.TrimPrefix(migrateJobs, "k8s/base/"))
	}

	var images strings.Builder
	for _, name := range imageNames(vs) {
		fmt.Fprintf(&images, "  - name: b24hub/%s\n    newName: %s%s\n", name, registry, name)
	}
	base, err := fillFragments(repo, baseKustomization, map[string]string{
		"resources": resources.String(),
		"images":    images.String(),
	})
	if err != nil {
		return nil, err
	}
	files = append(files, base)

	for _, p := range overlayKustomizations {
		data, err := fs.ReadFile(repo, p)
		if err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		tag, err := overlayTag(string(data))
		if err != nil {
			return nil, fmt.Errorf("render: %s: %w", p, err)
		}
		var b strings.Builder
		for _, name := range imageNames(vs) {
			fmt.Fprintf(&b, "  - {name: %s%s, newTag: %s}\n", registry, name, tag)
		}
		f, err := fillFragments(repo, p, map[string]string{"images": b.String()})
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// registry is where the images are pushed; the base kustomization maps
// each b24hub/<name> to it.
const registry = "ghcr.io/b24hub/b24hub/"

var newTagRe = regexp.MustCompile(`newTag:\s*("[^"]*"|[^\s}]+)`)

// overlayTag is the one newTag the overlay's images fragment uses today: the
// overlay chooses the tag, the catalog chooses the images.
func overlayTag(text string) (string, error) {
	_, rest, ok := strings.Cut(text, "generated:images:begin")
	if !ok {
		return "", fmt.Errorf("no %q marker line", "generated:images:begin")
	}
	frag, _, _ := strings.Cut(rest, "generated:images:end")
	tags := map[string]bool{}
	var tag string
	for _, m := range newTagRe.FindAllStringSubmatch(frag, -1) {
		tag = m[1]
		tags[tag] = true
	}
	switch len(tags) {
	case 0:
		return "", fmt.Errorf("the images fragment has no newTag to keep; write one entry with the overlay's tag, then run %s", Command)
	case 1:
		return tag, nil
	default:
		return "", fmt.Errorf("the images fragment uses several tags; a release tags every image alike (a pipeline pins digests with `kustomize edit set image` on its own checkout)")
	}
}

// comment returns text as YAML comment lines of at most 78 columns, without
// a final newline.
func comment(text string) string {
	var b strings.Builder
	line := "#"
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > 78 && line != "#" {
			b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + w
	}
	b.WriteString(line)
	return b.String()
}

func withDatabase(vs []*view) []*view {
	var out []*view
	for _, v := range vs {
		if v.Database != nil {
			out = append(out, v)
		}
	}
	return out
}
