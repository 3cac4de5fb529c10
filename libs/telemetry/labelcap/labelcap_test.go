package labelcap

import (
	"fmt"
	"testing"
)

func TestCapAdmitsTheFirstValues(t *testing.T) {
	c := New(3)
	for i := range 3 {
		if got := c.Value(fmt.Sprint("p", i)); got != fmt.Sprint("p", i) {
			t.Fatalf("value %d: %q", i, got)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"p3", Other},
		{"p0", "p0"}, // admitted before the bound was reached
		{"p9", Other},
		{"p3", Other}, // not admitted later either
	} {
		if got := c.Value(tc.in); got != tc.want {
			t.Errorf("Value(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
