package k8stest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kubeScoreArgs: warnings fail too. Two checks are off on purpose:
//   - CPU limits: the services set CPU requests and no CPU limit, so bursts
//     are not throttled (CFS throttling adds tail latency to the ingress,
//     which must answer within 2s); memory is limited.
//   - host podAntiAffinity: every Deployment spreads over nodes and zones with
//     topologySpreadConstraints (prod: DoNotSchedule per node), which
//     kube-score v1.20 does not recognise.
var kubeScoreArgs = []string{
	"score", "--kubernetes-version", "v1.33", "--exit-one-on-warning", "--output-format", "ci",
	"--ignore-container-cpu-limit",
	"--ignore-test", "deployment-has-host-podantiaffinity",
	"--enable-optional-test", "container-seccomp-profile",
	"--enable-optional-test", "container-ports-check",
}

// TestKubeScore runs kube-score offline on every rendered overlay. The
// binary is built into .bin by `task tools`; without it the test fails
// under CI=true and is skipped elsewhere.
func TestKubeScore(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join(repoRoot, ".bin", "kube-score"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		msg := "kube-score not installed at .bin/kube-score: run `go tool task tools` (or GOBIN=$PWD/.bin go install github.com/zegl/kube-score/cmd/kube-score@v1.20.0 from the repository root)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			r := render(t, o)
			f := filepath.Join(t.TempDir(), o+".yaml")
			if err := os.WriteFile(f, r.YAML, 0o644); err != nil {
				t.Fatal(err)
			}
			args := slices.Clone(kubeScoreArgs)
			if o == "dev" {
				// One replica of everything is the point of the dev overlay.
				args = append(args, "--ignore-test", "deployment-replicas", "--ignore-test", "horizontalpodautoscaler-replicas")
			}
			out, err := exec.Command(bin, append(args, f)...).CombinedOutput()
			if err != nil {
				var findings []string
				for _, line := range strings.Split(string(out), "\n") {
					if line != "" && !strings.HasPrefix(line, "[OK]") && !strings.HasPrefix(line, "[SKIPPED]") {
						findings = append(findings, line)
					}
				}
				t.Errorf("kube-score on overlay %s: %v\n%s", o, err, strings.Join(findings, "\n"))
			}
		})
	}
}
