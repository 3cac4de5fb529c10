package fakeportal_test

import (
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/fakeportal"
)

// crm.contact.get serves created contacts, EMAIL as a multi-field, and
// answers an unknown ID like the real portal (400, empty code).
func TestCRMContacts(t *testing.T) {
	p := newPortal(t, fakeportal.Config{})
	hook := strings.TrimPrefix(p.AddWebhook(1, "c"), "http://"+p.Domain())
	id := p.CreateContact(map[string]string{"NAME": "Ada", "LAST_NAME": "Lovelace", "EMAIL": "ada@example.com"}, false)
	st, env := call(t, p, hook+"crm.contact.get", map[string]any{"id": id})
	res, _ := env["result"].(map[string]any)
	emails, _ := res["EMAIL"].([]any)
	if st != 200 || res["NAME"] != "Ada" || res["LAST_NAME"] != "Lovelace" || len(emails) != 1 ||
		emails[0].(map[string]any)["VALUE"] != "ada@example.com" {
		t.Fatalf("crm.contact.get = %d %v", st, env)
	}
	if st, env := call(t, p, hook+"crm.contact.get", map[string]any{"id": 999}); st != 400 || env["error"] != "" {
		t.Fatalf("unknown contact = %d %v", st, env)
	}
}
