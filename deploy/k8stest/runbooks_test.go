package k8stest

import (
	"os"
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
	"reauthorize-portal.md", "replay-after-outage.md", "README.md",
}

var (
	b24ctlCmdRe   = regexp.MustCompile("(?m)(?:^|`)b24ctl ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)((?: [^\n|&;`]*)?)")
	flagRe        = regexp.MustCompile(`(?:^|\s)--([a-z][a-z-]*)`)
	apiPathRe     = regexp.MustCompile(`/api/v1/[A-Za-z0-9_/{}<>:.-]*`)
	routeRe       = regexp.MustCompile(`\.(?:GET|POST|PUT|DELETE|PATCH)\("([^"]+)"`)
	deployRefRe   = regexp.MustCompile(`\bdeploy/([a-z0-9-]+)`)
	promLineRe    = regexp.MustCompile(`(?m)^#\s{2,}(.*(?:b24hub_|nats_).*)$`)
	cmdPathRe     = regexp.MustCompile(`path:\s*"([^"]+)"`)
	quotedFlagRe  = regexp.MustCompile(`fs\.[A-Za-z]+\(\s*(?:&?[^,"]*,\s*)?"([a-z][a-z-]*)"`)
	helpFlagNames = map[string]bool{"help": true}
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

func TestRunbooksMatchB24ctl(t *testing.T) {
	f := serviceFacts(t, "b24ctl")
	if !f.Exists {
		t.Skip("services/b24ctl/cmd/b24ctl not written yet")
	}
	paths := map[string]bool{}
	for _, m := range cmdPathRe.FindAllStringSubmatch(f.OwnText, -1) {
		paths[m[1]] = true
	}
	flags := map[string]bool{}
	for _, m := range quotedFlagRe.FindAllStringSubmatch(f.OwnText, -1) {
		flags[m[1]] = true
	}
	if len(paths) == 0 {
		t.Fatalf("found no b24ctl command registrations (path: \"...\") in services/b24ctl; update this test")
	}
	for file, text := range docFiles(t) {
		for _, m := range b24ctlCmdRe.FindAllStringSubmatch(text, -1) {
			cmd, rest := m[1], m[2]
			if !paths[cmd] {
				// "b24ctl simulate" style single-word commands.
				first, _, _ := strings.Cut(cmd, " ")
				if !paths[first] {
					t.Errorf("%s: `b24ctl %s` is not a b24ctl command (have: %v)", file, cmd, sortedKeys(paths))
					continue
				}
			}
			for _, fm := range flagRe.FindAllStringSubmatch(rest, -1) {
				if !flags[fm[1]] && !helpFlagNames[fm[1]] && !strings.HasPrefix(rest, " --dry-run") {
					t.Errorf("%s: `b24ctl %s ... --%s`: b24ctl defines no flag %q", file, cmd, fm[1], fm[1])
				}
			}
		}
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
