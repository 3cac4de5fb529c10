package eventbus_test

import (
	"regexp"
	"testing"

	"github.com/b24hub/b24hub/libs/eventbus"
)

func TestErrorKinds(t *testing.T) {
	name := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`) // a Prometheus label value and a YAML word
	seen := map[string]bool{}
	for _, k := range eventbus.ErrorKinds() {
		if !name.MatchString(k) || seen[k] || !eventbus.IsErrorKind(k) {
			t.Errorf("kind %q: malformed, duplicated or not recognised", k)
		}
		seen[k] = true
	}
	for _, tt := range []struct {
		kind string
		want bool
	}{
		{eventbus.ErrorKindOverload, true},
		{"overload", true},
		{"overload_limit", false}, // what the monitor's default rule once waited for
		{"", false},
		{"OVERLOAD", false},
	} {
		if got := eventbus.IsErrorKind(tt.kind); got != tt.want {
			t.Errorf("IsErrorKind(%q) = %v", tt.kind, got)
		}
	}
	kinds := eventbus.ErrorKinds()
	kinds[0] = "mutated"
	if eventbus.ErrorKinds()[0] == "mutated" {
		t.Error("ErrorKinds returns its backing array")
	}
}
