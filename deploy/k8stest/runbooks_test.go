package k8stest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The runbooks and docs/deploy.md must stay true to the code: b24ctl
// commands and flags, monitor API routes, Deployment names and the metrics
// in their PromQL snippets.

var requiredRunbooks = []string{
	"events-stopped.md", "dead-letters-growing.md", "portal-rate-limited.md",
	"reauthorize-portal.md", "replay-after-outage.md", "rotate-monitor-token.md", "rotate-nats-credentials.md", "backup-restore.md", "README.md",
	"destination-paused.md",
}

var (
	fencedCmdRe    = regexp.MustCompile(`(?m)^[ \t]*(?:[A-Z_][A-Z0-9_]*=\S* )*b24ctl( [^\n]*)?$`)
	inlineCmdRe    = regexp.MustCompile("`b24ctl( [^`]*)?`")
	continuationRe = regexp.MustCompile(`\\\n\s*`)
	placeholderRe  = regexp.MustCompile(`<[a-z_][a-z_ ]*>`)
	shellCutRe     = regexp.MustCompile(`\s(?:#|\||&|;|<|>|2>)`)
	usageLineRe    = regexp.MustCompile(`(?m)^Usage:\n\s+b24ctl ?(.*)$`)
	apiPathRe      = regexp.MustCompile(`/api/v1/[A-Za-z0-9_/{}<>:.-]*`)
	routeRe        = regexp.MustCompile(`\.(?:GET|POST|PUT|DELETE|PATCH)\("([^"]+)"`)
	deployRefRe    = regexp.MustCompile(`\bdeploy/([a-z0-9-]+)`)
	promLineRe     = regexp.MustCompile(`(?m)^#\s{2,}(.*(?:b24hub_|nats_).*)$`)
)

func docFiles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range requiredRunbooks {
		b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "runbooks", f))
		if err != nil {
			t.Errorf("runbook docs/runbooks/%s: %v", f, err)
			continue
		}
		out["docs/runbooks/"+f] = string(b)
	}
	out["docs/deploy.md"] = string(readFile(t, "docs/deploy.md"))
	return out
}

// b24ctlDocs are the files whose b24ctl command lines must run as written:
// the runbooks, the deploy guide, the CLI's own page and the README.
func b24ctlDocs(t *testing.T) map[string]string {
	out := docFiles(t)
	for _, f := range []string{"docs/b24ctl.md", "README.md"} {
		out[f] = string(readFile(t, f))
	}
	return out
}

// docCommands returns the b24ctl command lines of a document: in fenced
// code blocks, lines that run b24ctl (after environment assignments), with
// shell continuations joined; in prose, inline code spans that start with
// b24ctl. Each is cut at a comment, pipe, list or redirection, and
// placeholders such as <member_id> become a plain word.
func docCommands(text string) []string {
	var raw []string
	inFence := false
	var block strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			if inFence {
				joined := continuationRe.ReplaceAllString(block.String(), " ")
				for _, m := range fencedCmdRe.FindAllStringSubmatch(joined, -1) {
					raw = append(raw, m[1])
				}
				block.Reset()
			}
			inFence = !inFence
			continue
		}
		if inFence {
			block.WriteString(line + "\n")
			continue
		}
		for _, m := range inlineCmdRe.FindAllStringSubmatch(line, -1) {
			raw = append(raw, m[1])
		}
	}
	var out []string
	for _, r := range raw {
		line := placeholderRe.ReplaceAllString(r, "PLACEHOLDER")
		if i := shellCutRe.FindStringIndex(line); i != nil {
			line = line[:i[0]]
		}
		out = append(out, strings.TrimSpace(line))
	}
	return out
}

// TestRunbooksMatchB24ctl runs every documented b24ctl command line, with
// --help added, against b24ctl built from this checkout: the command path
// must exist, positional arguments must be ones it takes, and every flag
// must parse (name and value type), as an operator would type it.
func TestRunbooksMatchB24ctl(t *testing.T) {
	f := serviceFacts(t, "b24ctl")
	if !f.Exists {
		t.Skip("services/b24ctl/cmd/b24ctl not written yet")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build b24ctl")
	}
	bin := filepath.Join(t.TempDir(), "b24ctl")
	build := exec.Command(goBin, "build", "-o", bin, "./services/b24ctl/cmd/b24ctl")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build b24ctl: %v\n%s", err, out)
	}
	checked := 0
	for file, text := range b24ctlDocs(t) {
		for _, line := range docCommands(text) {
			args := strings.Fields(strings.NewReplacer(`"`, "", "'", "").Replace(line))
			cmd := exec.Command(bin, append(args, "--help")...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s: `b24ctl %s` does not parse: %v\n%s", file, line, err, out)
				continue
			}
			// The resolved command, from the help's first usage line.
			usage := usageLineRe.FindStringSubmatch(string(out))
			if usage == nil {
				t.Errorf("%s: `b24ctl %s --help` printed no usage line:\n%s", file, line, out)
				continue
			}
			var path, params []string
			for _, w := range strings.Fields(usage[1]) {
				switch {
				case w == "[flags]" || w == "[command]":
				case strings.ToUpper(w) == w:
					params = append(params, w)
				default:
					path = append(path, w)
				}
			}
			var words []string
			for _, a := range args {
				if strings.HasPrefix(a, "-") {
					break
				}
				words = append(words, a)
			}
			if len(words) < len(path) || strings.Join(words[:len(path)], " ") != strings.Join(path, " ") || len(words)-len(path) > len(params) {
				t.Errorf("%s: `b24ctl %s`: b24ctl has no such command, or it takes fewer arguments (it resolved to `b24ctl %s`)", file, line, usage[1])
			}
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d documented b24ctl command lines; the extraction is broken", checked)
	}
}

func TestRunbooksMatchMonitorAPI(t *testing.T) {
	f := serviceFacts(t, "monitor")
	routes := routeRe.FindAllStringSubmatch(f.OwnText, -1)
	if len(routes) == 0 {
		t.Skip("services/monitor has no HTTP routes yet")
	}
	var patterns []*regexp.Regexp
	for _, r := range routes {
		p := r[1]
		if !strings.HasPrefix(p, "/api/v1") {
			p = "/api/v1" + p // routes registered on the /api/v1 group
		}
		p = regexp.QuoteMeta(p)
		p = regexp.MustCompile(`:[a-z_]+`).ReplaceAllString(p, `[^/]+`)
		patterns = append(patterns, regexp.MustCompile("^"+p+"$"))
	}
	for file, text := range docFiles(t) {
		for _, path := range apiPathRe.FindAllString(text, -1) {
			path = strings.TrimRight(path, ".:")
			norm := regexp.MustCompile(`\{[^}]*\}|<[^>]*>`).ReplaceAllString(path, "x")
			var ok bool
			for _, p := range patterns {
				ok = ok || p.MatchString(norm)
			}
			if !ok && norm != "/api/v1/" && norm != "/api/v1" {
				t.Errorf("%s mentions %s, which the monitor does not route", file, path)
			}
		}
	}
}

func TestRunbooksMatchManifests(t *testing.T) {
	r := render(t, "prod")
	known := map[string]bool{"nats-box": true, "ingress-nginx-controller": true}
	for _, d := range r.Deployments {
		known[d.Name] = true
	}
	for file, text := range docFiles(t) {
		for _, m := range deployRefRe.FindAllStringSubmatch(text, -1) {
			if m[1] == "docker" || m[1] == "nats" || m[1] == "postgres" || m[1] == "monitoring" || m[1] == "k8stest" {
				continue // repository paths deploy/<dir>
			}
			if !known[m[1]] {
				t.Errorf("%s: deploy/%s is not a Deployment of the prod overlay or the NATS chart", file, m[1])
			}
		}
		for _, m := range promLineRe.FindAllStringSubmatch(text, -1) {
			checkExpr(t, file+" PromQL `"+strings.TrimSpace(m[1])+"`", m[1])
		}
	}
}
