package k8stest

import (
	"testing"

	"sigs.k8s.io/yaml"
)

// TestTaskfileParses: Taskfile.yml is YAML that go-task accepts. An
// unquoted description holding ": " breaks every task at once — `task
// test` included, which CI runs first — so it is caught here, beside the
// other checks of hand-written configuration.
func TestTaskfileParses(t *testing.T) {
	var tf struct {
		Tasks map[string]struct {
			Desc string `json:"desc"`
		} `json:"tasks"`
	}
	if err := yaml.Unmarshal(readFile(t, "Taskfile.yml"), &tf); err != nil {
		t.Fatalf("Taskfile.yml: %v", err)
	}
	for _, name := range []string{"test", "dev", "chaos", "bench", "soak", "render", "k8s:check"} {
		if _, ok := tf.Tasks[name]; !ok {
			t.Errorf("Taskfile.yml has no task %q", name)
		}
	}
}
