package portals_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/portals"
)

const secret32 = "0123456789abcdef0123456789abcdef"

const installationsFile = goodFile + `installations:
  - id: crm-main
    secret: ` + secret32 + `
    domain: crm.example.com
    webhook_url: https://crm.example.com/rest/1/hook/
  - id: crm-old
    secret: ` + secret32 + `
    active: false
`

func TestParseFileInstallations(t *testing.T) {
	ps, err := portals.ParseFile([]byte(installationsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 4 {
		t.Fatalf("parsed %d entries, want 4", len(ps))
	}
	in := ps[2]
	if !in.OnPremise || in.MemberID != "crm-main" || string(in.SigningSecret) != secret32 ||
		in.Domain != "crm.example.com" || in.WebhookURL == "" || !in.Active || in.TokenSHA256 != "" {
		t.Fatalf("installation parsed as %+v", in)
	}
	if ps[0].OnPremise || ps[3].Active {
		t.Fatalf("flags wrong: portal %+v, inactive installation %+v", ps[0], ps[3])
	}
}

func TestParseFileInstallationsFromSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secret32+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := portals.ParseFile([]byte("installations:\n  - id: a\n    secret_file: " + path + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(ps[0].SigningSecret) != secret32 {
		t.Fatalf("secret %q, want the file's content without the newline", ps[0].SigningSecret)
	}
}

func TestParseFileInstallationErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"missing secret", "installations:\n  - id: a\n", "secret or secret_file is required"},
		{"short secret", "installations:\n  - id: a\n    secret: short\n", "at least 32 bytes"},
		{"bad id", "installations:\n  - id: a.b\n    secret: " + secret32 + "\n", "want 1-64 letters"},
		{"unknown key", "installations:\n  - id: a\n    secret: " + secret32 + "\n    application_token: t\n", "not found"},
		{"id of a portal", "portals:\n  - member_id: a\n    application_token: t\ninstallations:\n  - id: a\n    secret: " + secret32 + "\n", "already listed"},
		{"twice", "installations:\n  - id: a\n    secret: " + secret32 + "\n  - id: a\n    secret: " + secret32 + "\n", "already listed"},
		{"bad webhook", "installations:\n  - id: a\n    secret: " + secret32 + "\n    webhook_url: ftp://x\n", "not an http(s) URL"},
		{"bad plan", "installations:\n  - id: a\n    secret: " + secret32 + "\n    plan: gold\n", "plan"},
		{"secret both ways", "installations:\n  - id: a\n    secret: " + secret32 + "\n    secret_file: /x\n", "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := portals.ParseFile([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestInstallationLookupIsSeparateFromTokens(t *testing.T) {
	ps, err := portals.ParseFile([]byte(installationsFile))
	if err != nil {
		t.Fatal(err)
	}
	r := portals.NewRegistry()
	if err := r.Replace(portals.SourceFile, ps); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id string
		ok bool
	}{
		{"crm-main", true},
		{"crm-old", false},                          // inactive
		{"a223c6b3710f85df22e9377d6c4f7553", false}, // a REST portal
		{"nobody", false},
	}
	for _, tt := range tests {
		if _, ok := r.Installation(tt.id); ok != tt.ok {
			t.Errorf("Installation(%s) = %v, want %v", tt.id, ok, tt.ok)
		}
	}
	// No token opens an installation on the REST route, the empty one and
	// the secret included.
	for _, tok := range []string{"", secret32} {
		if _, ok := r.Authenticate("crm-main", tok); ok {
			t.Errorf("Authenticate(crm-main, %q) accepted an on-premise installation", tok)
		}
	}
	// The webhook is reachable like a portal's, for REST calls back.
	if p, ok := r.Lookup("crm-main"); !ok || p.WebhookURL != "https://crm.example.com/rest/1/hook/" {
		t.Fatalf("Lookup(crm-main) = %+v, %v", p, ok)
	}
}
