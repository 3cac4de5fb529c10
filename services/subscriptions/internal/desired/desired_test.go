package desired

import (
	"strings"
	"testing"
)

const hook = "https://hooks.example.com/bitrix24/events"

func TestParse(t *testing.T) {
	doc := `
defaults:
  mode: push
  events: [oncrmdealupdate, ONCRMDEALUPDATE, ONTASKADD]
portals:
  - member_id: m1
    mode: offline
  - member_id: m2
    handler: https://other.example.com/bitrix24/events/r2
    reconcile: []
`
	s, err := Parse([]byte(doc), hook)
	if err != nil {
		t.Fatal(err)
	}
	d := s.For("unknown")
	if d.Mode != ModePush || strings.Join(d.Events, ",") != "ONCRMDEALUPDATE,ONTASKADD" || d.Handler != hook {
		t.Errorf("defaults = %+v", d)
	}
	if len(d.Reconcile) != 2 {
		t.Errorf("reconcile default lost: %v", d.Reconcile)
	}
	m1 := s.For("m1")
	if m1.Mode != ModeOffline || len(m1.Events) != 2 {
		t.Errorf("m1 = %+v", m1)
	}
	m2 := s.For("m2")
	if m2.Mode != ModePush || !strings.HasSuffix(m2.Handler, "/r2") || len(m2.Reconcile) != 0 {
		t.Errorf("m2 = %+v", m2)
	}
	if got := s.Listed(); strings.Join(got, ",") != "m1,m2" {
		t.Errorf("Listed = %v", got)
	}
}

func TestParseErrors(t *testing.T) {
	long := "https://h.example.com/" + strings.Repeat("x", 250)
	tests := map[string]string{
		"bad mode":       "defaults: {mode: sometimes}",
		"bad event":      "defaults: {events: [ON-CRM]}",
		"long handler":   "defaults: {handler: " + long + "}",
		"no dot":         "defaults: {handler: http://localhost/x}",
		"bad reconcile":  "defaults: {reconcile: [lead]}",
		"unknown key":    "defaults: {modes: push}",
		"duplicate":      "portals: [{member_id: a}, {member_id: a}]",
		"missing member": "portals: [{mode: push}]",
	}
	for name, doc := range tests {
		if _, err := Parse([]byte(doc), hook); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Parse(nil, ""); err == nil || !strings.Contains(err.Error(), "B24HUB_HANDLER_URL") {
		t.Errorf("empty handler error does not name the fix: %v", err)
	}
}

func TestBindings(t *testing.T) {
	tests := []struct {
		mode Mode
		want []string
	}{
		{ModePush, []string{"ONAPPTEST -> h.x/e", "ONAPPUNINSTALL -> h.x/e", "ONAPPUPDATE -> h.x/e", "ONCRMDEALUPDATE -> h.x/e"}},
		{ModeOffline, []string{"ONAPPTEST -> h.x/e", "ONAPPUNINSTALL -> h.x/e", "ONAPPUPDATE -> h.x/e", "ONCRMDEALUPDATE (offline)", "ONOFFLINEEVENT -> h.x/e"}},
		{ModeHybrid, []string{"ONAPPTEST -> h.x/e", "ONAPPUNINSTALL -> h.x/e", "ONAPPUPDATE -> h.x/e", "ONCRMDEALUPDATE (offline)", "ONCRMDEALUPDATE -> h.x/e", "ONOFFLINEEVENT -> h.x/e"}},
	}
	for _, tt := range tests {
		var got []string
		for _, b := range (Spec{Mode: tt.mode, Events: []string{"ONCRMDEALUPDATE"}, Handler: "h.x/e"}).Bindings() {
			got = append(got, b.String())
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s:\n got %v\nwant %v", tt.mode, got, tt.want)
		}
	}
}
