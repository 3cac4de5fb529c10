package main

import (
	"strconv"
	"testing"

	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
)

// TestOrderCheck holds the scale-out benchmark's order check to what it
// must catch: a deal's changes applied out of order (an older state written
// after a newer one) or twice (two changes from one state), each deal on
// its own.
func TestOrderCheck(t *testing.T) {
	type step struct {
		member, deal string
		old, new     string // OPPORTUNITY before and after; "" old: created
	}
	tests := []struct {
		name           string
		steps          []step
		checks, broken int
	}{
		{"in order", []step{{"a", "1", "", "1000001"}, {"a", "1", "1000001", "2000001"}}, 1, 0},
		{"one change per deal", []step{{"a", "1", "", "2000001"}, {"a", "2", "", "2000002"}, {"b", "1", "", "2000001"}}, 0, 0},
		{"older state applied after a newer one", []step{{"a", "1", "", "2000001"}, {"a", "1", "2000001", "1000001"}}, 1, 1},
		{"two changes from one state", []step{{"a", "1", "", "1000001"}, {"a", "1", "1000001", "2000001"}, {"a", "1", "1000001", "2000001"}}, 2, 1},
		{"created twice", []step{{"a", "1", "", "1000001"}, {"a", "1", "", "2000001"}}, 1, 1},
		{"same deal id on another portal is another deal", []step{{"a", "1", "", "2000001"}, {"b", "1", "", "1000001"}}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrderCheck("OPPORTUNITY")
			for _, s := range tt.steps {
				fc := &eventsv1.FieldChange{Field: "OPPORTUNITY", NewJson: strconv.Quote(s.new)}
				if s.old != "" {
					fc.OldJson = strconv.Quote(s.old)
				}
				o.add(&eventsv1.DomainChange{MemberId: s.member, EntityId: s.deal,
					Changes: []*eventsv1.FieldChange{{Field: "TITLE", OldJson: `"x"`, NewJson: `"y"`}, fc}})
			}
			if o.checks != tt.checks || o.broken != tt.broken {
				t.Errorf("checks %d, out of order %d; want %d, %d", o.checks, o.broken, tt.checks, tt.broken)
			}
		})
	}
}
