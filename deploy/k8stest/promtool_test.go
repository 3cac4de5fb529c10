package k8stest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

// promtoolInstall is how `go tool task tools` builds .bin/promtool; keep the
// version equal to the Taskfile's.
const promtoolInstall = "GOBIN=$PWD/.bin go install github.com/prometheus/prometheus/cmd/promtool@v0.316.0"

// promtool returns the pinned promtool. Without it the test fails under
// CI=true (CI builds it with `go tool task tools`) and skips elsewhere.
func promtool(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join(repoRoot, ".bin", "promtool"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		msg := "promtool not installed at .bin/promtool: run `go tool task tools` (or " + promtoolInstall + " from the repository root)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// ruleFile is a Prometheus rule file (what promtool reads).
type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name  string     `json:"name"`
	Rules []ruleSpec `json:"rules"`
}

type ruleSpec struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// promRuleFile converts deploy/monitoring/prometheusrule.yaml's groups to a
// rule file, with or without the annotations.
func promRuleFile(t *testing.T, annotations bool) ([]byte, []string) {
	t.Helper()
	var pr monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/monitoring/prometheusrule.yaml"), &pr); err != nil {
		t.Fatalf("deploy/monitoring/prometheusrule.yaml: %v", err)
	}
	var f ruleFile
	var alerts []string
	for _, g := range pr.Spec.Groups {
		rg := ruleGroup{Name: g.Name}
		for _, r := range g.Rules {
			rs := ruleSpec{Alert: r.Alert, Expr: r.Expr.String(), Labels: r.Labels}
			if r.For != nil {
				rs.For = string(*r.For)
			}
			if annotations {
				rs.Annotations = r.Annotations
			}
			rg.Rules = append(rg.Rules, rs)
			alerts = append(alerts, r.Alert)
		}
		f.Groups = append(f.Groups, rg)
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b, alerts
}

// rulesTests is the part of deploy/monitoring/rules_test.yaml the coverage
// check reads.
type rulesTests struct {
	Tests []struct {
		Name        string `json:"name"`
		InputSeries []struct {
			Series string `json:"series"`
		} `json:"input_series"`
		AlertRuleTest []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `json:"exp_labels"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestPromtoolRules runs `promtool check rules` on the alert rules and
// `promtool test rules` on deploy/monitoring/rules_test.yaml, and checks
// that every alert has a test where it fires for one namespace while another
// namespace in the same input stays silent.
func TestPromtoolRules(t *testing.T) {
	var tests rulesTests
	if err := yaml.Unmarshal(readFile(t, "deploy/monitoring/rules_test.yaml"), &tests); err != nil {
		t.Fatalf("deploy/monitoring/rules_test.yaml: %v", err)
	}
	full, alerts := promRuleFile(t, true)
	covered := map[string]bool{}
	for _, tc := range tests.Tests {
		var inputNS []string
		for _, s := range tc.InputSeries {
			if m := nsMatcherRe.FindStringSubmatch(s.Series); m != nil && !slices.Contains(inputNS, m[1]) {
				inputNS = append(inputNS, m[1])
			}
		}
		for _, at := range tc.AlertRuleTest {
			var firing []string
			for _, e := range at.ExpAlerts {
				ns := e.ExpLabels["namespace"]
				if ns == "" {
					t.Errorf("test %q: %s is expected without a namespace label", tc.Name, at.Alertname)
				}
				firing = append(firing, ns)
			}
			silent := slices.ContainsFunc(inputNS, func(ns string) bool { return !slices.Contains(firing, ns) })
			if len(firing) > 0 && silent {
				covered[at.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		if !covered[a] {
			t.Errorf("alert %s has no test in deploy/monitoring/rules_test.yaml where it fires for one namespace and stays silent for a healthy one", a)
		}
	}

	if pin := strings.Fields(promtoolInstall)[3]; !strings.Contains(string(readFile(t, "Taskfile.yml")), pin) {
		t.Errorf("Taskfile.yml's tools task does not install %s (keep promtoolInstall and the Taskfile equal)", pin)
	}

	bin := promtool(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", write("full.rules.yaml", full))
	bare, _ := promRuleFile(t, false)
	write("prometheusrule.rules.yaml", bare)
	run("test", "rules", write("rules_test.yaml", readFile(t, "deploy/monitoring/rules_test.yaml")))
}

// nsMatcherRe finds a series' namespace matcher in a test's input_series.
var nsMatcherRe = regexp.MustCompile(`namespace="([^"]*)"`)
