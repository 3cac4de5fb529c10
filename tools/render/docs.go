package render

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

const (
	readme     = "README.md"
	deployDoc  = "docs/deploy.md"
	dashboard  = "deploy/monitoring/grafana-dashboard.json"
	alertRules = "deploy/monitoring/prometheusrule.yaml"
)

// jobListRes find the job=~"a|b|c" selectors in the dashboard (JSON, quotes
// escaped) and in the alert rules.
var jobListRes = map[string]*regexp.Regexp{
	dashboard:  regexp.MustCompile(`job=~\\"([a-z0-9|-]+)\\"`),
	alertRules: regexp.MustCompile(`job=~"([a-z0-9|-]+)"`),
}

// monitoringFiles rewrites every job=~ selector that lists services (one
// declared service name at least) to list exactly the declared services.
// Selectors of other jobs are left alone.
func monitoringFiles(repo fs.FS, vs []*view) ([]File, error) {
	names := map[string]bool{}
	var list []string
	for _, v := range vs {
		names[v.Name] = true
		list = append(list, v.Name)
	}
	jobs := strings.Join(list, "|")
	var files []File
	for _, p := range []string{dashboard, alertRules} {
		data, err := fs.ReadFile(repo, p)
		if err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		re := jobListRes[p]
		out := re.ReplaceAllStringFunc(string(data), func(m string) string {
			sub := re.FindStringSubmatch(m)
			for _, j := range strings.Split(sub[1], "|") {
				if names[j] {
					return strings.Replace(m, sub[1], jobs, 1)
				}
			}
			return m
		})
		files = append(files, File{Path: p, Data: []byte(out)})
	}
	return files, nil
}

func docsFiles(repo fs.FS, vs []*view) ([]File, error) {
	var table strings.Builder
	table.WriteString("| Service | Role | What it does | Reads (durable consumers) | PostgreSQL schema | Calls portals | Docs |\n")
	table.WriteString("|---|---|---|---|---|---|---|\n")
	for _, v := range vs {
		var durables []string
		for _, c := range v.Consumers {
			durables = append(durables, fmt.Sprintf("`%s` on `%s`", c.Durable, c.Stream))
		}
		schema := "—"
		if v.Database != nil {
			schema = "`" + v.Database.Schema + "`"
		}
		var docs []string
		for _, p := range []string{"services/" + v.Name + "/README.md", "docs/" + v.Name + ".md"} {
			if _, err := fs.Stat(repo, p); err == nil {
				docs = append(docs, fmt.Sprintf("[%s](%s)", p, p))
			}
		}
		fmt.Fprintf(&table, "| `services/%s` | %s | %s | %s | %s | %s | %s |\n",
			v.Name, v.Role, cell(v.Summary), orDash(strings.Join(durables, ", ")), schema, yesNo(v.PortalClient), orDash(strings.Join(docs, ", ")))
	}
	readmeFile, err := fillFragments(repo, readme, map[string]string{"services": table.String()})
	if err != nil {
		return nil, err
	}

	var deploys strings.Builder
	deploys.WriteString("| Deployment | Replicas | Ports (besides admin 9090) | PostgreSQL (migrate Job) | Portals (HTTPS egress) | Secrets |\n")
	deploys.WriteString("|---|---|---|---|---|---|\n")
	for _, v := range vs {
		replicas := fmt.Sprintf("HPA %d–%d (CPU %d%%)", v.Scaling.MinReplicas, v.Scaling.MaxReplicas, v.Scaling.TargetCPU)
		switch {
		case v.Scaling.Singleton:
			replicas = fmt.Sprintf("%d, one active (lease)", v.Scaling.MinReplicas)
		case !v.Autoscaled:
			replicas = fmt.Sprintf("%d (fixed)", v.Scaling.MinReplicas)
		}
		var ports []string
		for _, p := range v.Ports {
			ports = append(ports, fmt.Sprintf("%s %d (%s)", p.Name, p.Port, p.Exposure))
		}
		pg := "—"
		if v.Database != nil {
			pg = fmt.Sprintf("schema `%s`, `b24hub-migrate-%s`", v.Database.Schema, v.Name)
		}
		var secrets []string
		if v.Database != nil {
			secrets = append(secrets, "`"+pgSecret+"`")
		}
		for _, m := range v.Mounts {
			secrets = append(secrets, "`"+m.Secret+"`")
		}
		fmt.Fprintf(&deploys, "| `%s` | %s | %s | %s | %s | %s |\n",
			v.Name, replicas, orDash(strings.Join(ports, ", ")), pg, yesNo(v.PortalClient), orDash(strings.Join(secrets, ", ")))
	}
	images := strings.Join(imageNames(vs), " ")
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	build := fmt.Sprintf("```sh\nVERSION=0.1.0\nfor s in %s; do\n"+
		"  docker buildx build --platform linux/amd64,linux/arm64 -f deploy/docker/Dockerfile \\\n"+
		"    --build-arg SERVICE=$s --build-arg VERSION=$VERSION --build-arg REVISION=$(git rev-parse HEAD) \\\n"+
		"    -t ghcr.io/b24hub/b24hub/$s:$VERSION --push .\ndone\n```\n", images)
	rollout := fmt.Sprintf("```sh\nkubectl -n b24hub wait job/b24hub-topology --for=condition=complete --timeout=10m\n"+
		"kubectl -n b24hub wait job -l app.kubernetes.io/component=migrate --for=condition=complete --timeout=15m\n"+
		"for d in %s; do\n  kubectl -n b24hub rollout status deploy/$d --timeout=10m\ndone\n```\n", strings.Join(names, " "))
	deployFile, err := fillFragments(repo, deployDoc, map[string]string{
		"services": deploys.String(),
		"images":   build,
		"rollout":  rollout,
	})
	if err != nil {
		return nil, err
	}
	return []File{readmeFile, deployFile}, nil
}

func cell(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "|", `\|`) }

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
