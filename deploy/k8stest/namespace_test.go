package k8stest

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Dev and prod (or several installs) share one Prometheus: a rule or panel
// that sums across namespaces reads "2 leaders" or "no errors" where one
// namespace has none and another is healthy.

var (
	// aggregationRe finds PromQL aggregations and their grouping, written
	// the way these files write them: `sum by (a, b) (`, or `sum(` for none.
	aggregationRe = regexp.MustCompile(`\b(sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\s*(?:(by|without)\s*\(([^)]*)\)\s*)?\(`)
	// selectorRe finds a metric name and its label matchers, if any.
	selectorRe = regexp.MustCompile(`\b((?:b24hub|nats|go|process)_[a-z0-9_]+|up)\b(\{[^}]*\})?`)
)

// aggregationsWithoutNamespace lists each aggregation in expr that does not
// keep the namespace label.
func aggregationsWithoutNamespace(expr string) []string {
	var bad []string
	for _, m := range aggregationRe.FindAllStringSubmatch(expr, -1) {
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			labels = append(labels, strings.TrimSpace(l))
		}
		keeps := m[2] == "by" && slices.Contains(labels, "namespace") ||
			m[2] == "without" && !slices.Contains(labels, "namespace")
		if !keeps {
			bad = append(bad, strings.TrimSpace(m[0]))
		}
	}
	return bad
}

func TestAggregationsWithoutNamespace(t *testing.T) {
	for _, tt := range []struct {
		expr string
		bad  int
	}{
		{`sum(b24hub_subscriptions_leader) != 1`, 1},
		{`(sum(x) or vector(0)) != 1`, 1},
		{`sum by (consumer) (rate(x[5m]))`, 1},
		{`sum by (namespace, consumer) (rate(x[5m]))`, 0},
		{`histogram_quantile(0.95, sum by (namespace, le) (rate(x[5m])))`, 0},
		{`max without (pod) (x)`, 0},
		{`max without (namespace, pod) (x)`, 1},
		{`sum by (namespace) (a) / sum(b)`, 1},
	} {
		if got := aggregationsWithoutNamespace(tt.expr); len(got) != tt.bad {
			t.Errorf("%s: %v, want %d without namespace", tt.expr, got, tt.bad)
		}
	}
}

// TestAlertsPerNamespace: every alert aggregates by namespace, so each
// namespace fires on its own and the alert carries the namespace label.
// (promtool's unit tests in deploy/monitoring/rules_test.yaml check the
// labels each alert actually fires with.)
func TestAlertsPerNamespace(t *testing.T) {
	r := render(t, "prod")
	if len(r.PrometheusRules) != 1 {
		t.Fatalf("prod: %d PrometheusRules, want 1", len(r.PrometheusRules))
	}
	for _, g := range r.PrometheusRules[0].Spec.Groups {
		for _, rule := range g.Rules {
			expr := rule.Expr.String()
			if !aggregationRe.MatchString(expr) {
				t.Errorf("alert %s: no aggregation by namespace in %q", rule.Alert, expr)
			}
			for _, a := range aggregationsWithoutNamespace(expr) {
				t.Errorf("alert %s: %q drops the namespace label: add it to by (...)", rule.Alert, a)
			}
			if strings.Contains(expr, "vector(") {
				t.Errorf("alert %s: vector() has no namespace; find missing series per namespace with unless/or on (namespace)", rule.Alert)
			}
			if s := rule.Annotations["summary"]; !strings.Contains(s, "$labels.namespace") {
				t.Errorf("alert %s: summary %q does not name the namespace", rule.Alert, s)
			}
		}
	}
}

// dashboardFilter is the matcher every dashboard query carries.
const dashboardFilter = `namespace="$namespace"`

// selectorsWithoutNamespace lists each series selector in expr that does not
// filter on the dashboard's namespace variable.
func selectorsWithoutNamespace(expr string) []string {
	var bad []string
	for _, m := range selectorRe.FindAllStringSubmatch(expr, -1) {
		if !strings.Contains(m[2], dashboardFilter) {
			bad = append(bad, m[0])
		}
	}
	return bad
}

// TestDashboardPerNamespace: the dashboard has a namespace variable and
// every query of every panel filters on it.
func TestDashboardPerNamespace(t *testing.T) {
	var d struct {
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readFile(t, "deploy/monitoring/grafana-dashboard.json"), &d); err != nil {
		t.Fatal(err)
	}
	var hasVar bool
	for _, v := range d.Templating.List {
		if v.Name == "namespace" && v.Type == "query" && strings.Contains(string(v.Query), "namespace)") {
			hasVar = true
		}
	}
	if !hasVar {
		t.Errorf("dashboard: no query variable \"namespace\" (label_values(..., namespace))")
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, s := range selectorsWithoutNamespace(tg.Expr) {
				t.Errorf("panel %q: %s does not filter on %s", p.Title, s, dashboardFilter)
			}
		}
	}
	if got := selectorsWithoutNamespace(`sum(rate(b24hub_x_total[5m])) / sum(b24hub_y{namespace="$namespace"})`); len(got) != 1 {
		t.Errorf("selectorsWithoutNamespace found %v, want the one unfiltered selector", got)
	}
}

// jobMatcherRe finds job="x" and job=~"x|y" matchers.
var jobMatcherRe = regexp.MustCompile(`\bjob\s*=~?\s*"([^"]*)"`)

// TestMonitoringJobNames: the job names the rules and the dashboard use are
// the Services a ServiceMonitor scrapes (the Prometheus Operator's default
// job label is the Service name). A renamed service would otherwise leave
// the lease alerts' fallback, the namespace variable or the heap panel
// silently empty.
func TestMonitoringJobNames(t *testing.T) {
	r := render(t, "prod")
	scraped := map[string]bool{}
	for _, sm := range r.ServiceMonitors {
		for _, s := range r.Services {
			if s.Labels["app.kubernetes.io/name"] == sm.Spec.Selector.MatchLabels["app.kubernetes.io/name"] {
				scraped[s.Name] = true
			}
		}
	}
	if len(scraped) == 0 {
		t.Fatal("prod: no Service is selected by a ServiceMonitor")
	}
	var texts []string
	for _, g := range r.PrometheusRules[0].Spec.Groups {
		for _, rule := range g.Rules {
			texts = append(texts, "alert "+rule.Alert+": "+rule.Expr.String())
		}
	}
	texts = append(texts, "dashboard: "+string(readFile(t, "deploy/monitoring/grafana-dashboard.json")))
	used := 0
	for _, text := range texts {
		where, _, _ := strings.Cut(text, ":")
		for _, m := range jobMatcherRe.FindAllStringSubmatch(strings.ReplaceAll(text, `\"`, `"`), -1) {
			for _, job := range strings.Split(m[1], "|") {
				used++
				if !scraped[job] {
					t.Errorf("%s: job %q is not a Service any ServiceMonitor scrapes (have %v)", where, job, scraped)
				}
			}
		}
	}
	if used < 3 {
		t.Errorf("only %d job names found: the lease alerts and the dashboard variable use job matchers", used)
	}
}
