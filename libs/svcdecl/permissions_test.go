package svcdecl

import (
	"slices"
	"strings"
	"testing"
)

func TestSubjectsOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"b24.events.*.*", "b24.events.*.ONCRMDEALADD", true},
		{"b24.events.*.*", "b24.events.>", true},
		{"b24.events.>", "b24.events", false},
		{"b24.changes.deal.*.*", "b24.commands.deal.*.update", false},
		{"b24.commands.>", "b24.commands.deal.*.update", true},
		{"b24.outcomes.x.*", "b24.outcomes.x.*.extra", false},
		{">", "a.b", true},
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
	}
	for _, tt := range tests {
		if got := subjectsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := subjectsOverlap(tt.b, tt.a); got != tt.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

// A durable fed by no service of the catalog gets a publisher identity
// allowed exactly its filters; a durable fed by a service does not; the
// operator and admin close the list.
func TestIdentities(t *testing.T) {
	c := Catalog{
		{Name: "edge", Publishes: []string{"b24.events.*.*"}},
		{Name: "deals", Consumers: []Consumer{
			{Durable: "deals", Stream: "EVENTS", FilterSubjects: []string{"b24.events.*.ONCRMDEALADD"}},
			{Durable: "deals-cmd", Stream: "COMMANDS", FilterSubjects: []string{"b24.commands.deal.*.update"}},
		}},
	}
	ids := c.Identities([]string{"b24.control.x"})
	var users []string
	for _, p := range ids {
		users = append(users, p.User)
	}
	if want := []string{"edge", "deals", "deals-cmd-publisher", OperatorUser, AdminUser}; !slices.Equal(users, want) {
		t.Fatalf("identities %v, want %v", users, want)
	}
	for _, svc := range ids[:2] {
		// The probe of eventbus.ServerWatch, which moves a connection off
		// a server cut off from the JetStream cluster.
		if !slices.Contains(svc.Publish, "$JS.API.INFO") {
			t.Errorf("service %s may not ask for JetStream's account info: %v", svc.User, svc.Publish)
		}
	}
	pub := ids[2]
	if !slices.Equal(pub.Publish, []string{"b24.commands.deal.*.update"}) || !slices.Equal(pub.Subscribe, []string{"_INBOX.deals-cmd-publisher.>"}) {
		t.Errorf("command publisher %+v", pub)
	}
	if slices.ContainsFunc(ids[1].Publish, func(s string) bool { return subjectsOverlap(s, "b24.commands.deal.p.update") }) {
		t.Errorf("the consumer may publish its own commands: %v", ids[1].Publish)
	}
	if !slices.Equal(ids[3].Publish, []string{"b24.control.x"}) {
		t.Errorf("operator %+v", ids[3])
	}
}

// Inspecting a stream reads its consumers and messages; scanning one adds
// ordered consumers; neither acknowledges or publishes into it.
func TestInspectsAndScans(t *testing.T) {
	p := Service{Name: "watcher", Inspects: []string{"EVENTS", "DEAD"}, Scans: []string{"EVENTS"}}.Permissions()
	for _, want := range []string{"$JS.API.STREAM.INFO.DEAD", "$JS.API.CONSUMER.LIST.DEAD", "$JS.API.STREAM.MSG.GET.DEAD",
		"$JS.API.DIRECT.GET.DEAD", "$JS.API.CONSUMER.CREATE.EVENTS.>", "$JS.API.CONSUMER.MSG.NEXT.EVENTS.>", "$JS.API.CONSUMER.DELETE.EVENTS.>"} {
		if !slices.Contains(p.Publish, want) {
			t.Errorf("missing %s in %v", want, p.Publish)
		}
	}
	for _, s := range p.Publish {
		if strings.HasPrefix(s, "$JS.ACK.") || strings.HasSuffix(s, ".DEAD.>") && strings.Contains(s, "CONSUMER") ||
			!strings.HasPrefix(s, "$JS.API.") {
			t.Errorf("inspecting or scanning grants %s", s)
		}
	}
}
