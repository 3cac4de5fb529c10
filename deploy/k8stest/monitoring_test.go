package k8stest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// promMetrics are the Prometheus series names the code produces: every OTel
// instrument created in libs/ and services/ (non-test code), named the way
// libs/telemetry exports them (prefix b24hub_, dots to underscores, unit
// suffix, _total for counters, _bucket/_sum/_count for histograms), plus the
// attribute keys as label names.
type promMetrics struct {
	Names  map[string]bool
	Labels map[string]bool
}

var (
	instrumentRe = regexp.MustCompile(`\.(Int64|Float64)(Counter|UpDownCounter|Histogram|Gauge|ObservableCounter|ObservableUpDownCounter|ObservableGauge)\(\s*"([A-Za-z0-9_.]+)"`)
	unitRe       = regexp.MustCompile(`metric\.WithUnit\("([^"]*)"\)`)
	attrKeyRe    = regexp.MustCompile(`attribute\.(?:Key|String|Int|Int64|Bool|Float64|StringSlice)\(\s*"([A-Za-z0-9_.]+)"`)
	metricRefRe  = regexp.MustCompile(`\b((?:b24hub|nats|go|process)_[a-z0-9_]+)\b`)
	labelRefRe   = regexp.MustCompile(`([a-z_][a-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	byRe         = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)

	codeMetricsOnce sync.Once
	codeMetricsVal  promMetrics
)

// natsExporterMetrics are the prometheus-nats-exporter JetStream series
// (-jsz=all -prefix=nats, as the NATS chart runs it) the rules may use.
var natsExporterMetrics = map[string]bool{
	"nats_stream_total_messages": true, "nats_stream_total_bytes": true, "nats_stream_first_seq": true,
	"nats_stream_last_seq": true, "nats_stream_consumer_count": true, "nats_stream_subject_count": true,
	"nats_consumer_num_pending": true, "nats_consumer_num_ack_pending": true, "nats_consumer_num_redelivered": true,
	"nats_consumer_num_waiting": true, "nats_consumer_delivered_consumer_seq": true, "nats_consumer_delivered_stream_seq": true,
	"nats_consumer_ack_floor_consumer_seq": true, "nats_consumer_ack_floor_stream_seq": true,
}

// otherLabels are labels added by Prometheus, the exporter or PromQL.
var otherLabels = map[string]bool{
	"le": true, "job": true, "namespace": true, "pod": true, "instance": true, "service": true,
	"stream_name": true, "consumer_name": true, "is_consumer_leader": true, "is_stream_leader": true,
	"server_id": true, "account": true,
}

func codeMetrics(t *testing.T) promMetrics {
	t.Helper()
	codeMetricsOnce.Do(func() {
		pm := promMetrics{Names: map[string]bool{"go_memstats_heap_inuse_bytes": true, "go_goroutines": true,
			"process_resident_memory_bytes": true, "process_cpu_seconds_total": true}, Labels: map[string]bool{}}
		for _, top := range []string{"libs", "services"} {
			entries, _ := os.ReadDir(filepath.Join(repoRoot, top))
			for _, e := range entries {
				for _, p := range goFiles(t, top+"/"+e.Name()) {
					b, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					src := string(b)
					for _, m := range instrumentRe.FindAllStringSubmatchIndex(src, -1) {
						kind, name := src[m[4]:m[5]], src[m[6]:m[7]]
						call := callText(src, m[1])
						unit := ""
						if u := unitRe.FindStringSubmatch(call); u != nil {
							unit = u[1]
						}
						for _, n := range promNames(name, kind, unit) {
							pm.Names[n] = true
						}
					}
					for _, m := range attrKeyRe.FindAllStringSubmatch(src, -1) {
						pm.Labels[strings.ReplaceAll(m[1], ".", "_")] = true
					}
				}
			}
		}
		codeMetricsVal = pm
	})
	return codeMetricsVal
}

// callText returns the source of a call from just after its name's opening
// quote to its closing parenthesis.
func callText(src string, from int) string {
	depth := 1
	for i := from; i < len(src); i++ {
		switch src[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return src[from:i]
			}
		}
	}
	return src[from:]
}

// promNames is the OTel Prometheus exporter's naming (underscore escaping
// with suffixes) under libs/telemetry's "b24hub" namespace.
func promNames(name, kind, unit string) []string {
	base := "b24hub_" + regexp.MustCompile(`[^A-Za-z0-9_:]`).ReplaceAllString(name, "_")
	switch unit {
	case "s":
		base += "_seconds"
	case "ms":
		base += "_milliseconds"
	case "By":
		base += "_bytes"
	}
	switch kind {
	case "Counter", "ObservableCounter":
		return []string{base + "_total"}
	case "Histogram":
		return []string{base + "_bucket", base + "_sum", base + "_count"}
	}
	return []string{base}
}

// checkExpr reports metric and label names in a PromQL expression that no
// code, exporter or Prometheus produces.
func checkExpr(t *testing.T, where, expr string) {
	t.Helper()
	pm := codeMetrics(t)
	for _, m := range metricRefRe.FindAllString(expr, -1) {
		switch {
		case strings.HasPrefix(m, "nats_"):
			if !natsExporterMetrics[m] {
				t.Errorf("%s: %s is not a prometheus-nats-exporter JetStream metric", where, m)
			}
		case !pm.Names[m]:
			t.Errorf("%s: metric %s is not produced by any instrument in libs/ or services/ (renamed? unit suffix?)", where, m)
		}
	}
	var labels []string
	for _, m := range labelRefRe.FindAllStringSubmatch(expr, -1) {
		labels = append(labels, m[1])
	}
	for _, m := range byRe.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	for _, l := range labels {
		if !pm.Labels[l] && !otherLabels[l] {
			t.Errorf("%s: label %q is not an attribute any instrument records", where, l)
		}
	}
}

// requiredAlerts: the alert list, each with the alerts covering it.
var requiredAlerts = map[string][]string{
	"silence":             {"B24HubEventsSilent", "B24HubProbeUnanswered"},
	"error rate":          {"B24HubConsumerErrorRate", "B24HubRestErrorRate"},
	"dead letters":        {"B24HubDeadLetters", "B24HubDeadLettersGrowing"},
	"consumer lag":        {"B24HubConsumerLag", "B24HubProcessingLate"},
	"rate-limit pressure": {"B24HubPortalRateLimited", "B24HubRateLimitPressure", "B24HubPortalOverloaded"},
	"ingress 5xx":         {"B24HubIngress5xx"},
	"ingress latency":     {"B24HubIngressSlow"},
}

const runbookURLPrefix = "https://github.com/b24hub/b24hub/blob/main/"

func TestPrometheusRules(t *testing.T) {
	r := render(t, "prod")
	if len(r.PrometheusRules) != 1 {
		t.Fatalf("prod: %d PrometheusRules, want 1", len(r.PrometheusRules))
	}
	alerts := map[string]monitoringv1.Rule{}
	for _, g := range r.PrometheusRules[0].Spec.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "" {
				t.Errorf("group %s: recording rule %s: only alerts are expected", g.Name, rule.Record)
				continue
			}
			if _, dup := alerts[rule.Alert]; dup {
				t.Errorf("alert %s defined twice", rule.Alert)
			}
			alerts[rule.Alert] = rule
			where := "alert " + rule.Alert
			if s := rule.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", where, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if rule.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", where, a)
				}
			}
			rel, ok := strings.CutPrefix(rule.Annotations["runbook_url"], runbookURLPrefix)
			if !ok || !strings.HasPrefix(rel, "docs/runbooks/") {
				t.Errorf("%s: runbook_url %q must be %sdocs/runbooks/<file>.md", where, rule.Annotations["runbook_url"], runbookURLPrefix)
			} else {
				file, _, _ := strings.Cut(rel, "#") // an anchor names a section of the runbook
				if _, err := os.Stat(filepath.Join(repoRoot, file)); err != nil {
					t.Errorf("%s: runbook %s does not exist", where, rel)
				}
			}
			checkExpr(t, where, rule.Expr.String())
		}
	}
	for concern, names := range requiredAlerts {
		for _, n := range names {
			if _, ok := alerts[n]; !ok {
				t.Errorf("the %s alert %s is missing", concern, n)
			}
		}
	}
}

type grafanaDashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestGrafanaDashboard(t *testing.T) {
	var d grafanaDashboard
	if err := json.Unmarshal(readFile(t, "deploy/monitoring/grafana-dashboard.json"), &d); err != nil {
		t.Fatalf("deploy/monitoring/grafana-dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard needs a uid, a title and panels")
	}
	var ids []int
	for _, p := range d.Panels {
		if slices.Contains(ids, p.ID) {
			t.Errorf("panel %q: duplicate id %d", p.Title, p.ID)
		}
		ids = append(ids, p.ID)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkExpr(t, "dashboard panel "+p.Title, tg.Expr)
		}
	}
	r := render(t, "prod")
	var found bool
	for _, cm := range r.ConfigMaps {
		if cm.Labels["grafana_dashboard"] == "1" && cm.Data["b24hub.json"] != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("prod: no ConfigMap with label grafana_dashboard=1 carrying b24hub.json")
	}
}
