package destfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func secretFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(p, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	key := secretFile(t)
	tests := []struct {
		name, yaml string
		policy     Policy
		wantErr    string
		subjects   []string
	}{
		{"changes", `destinations: [{name: crm, url: "https://crm.example.com/h", receives: {changes: [deal]}, secret_files: [` + key + `]}]`,
			Policy{}, "", []string{"b24.changes.deal.*.*"}},
		{"events of two portals", `destinations: [{name: crm, url: "https://crm.example.com/h", receives: {events: [ONCRMDEALADD], portals: [p1, p2]}, secret_files: [` + key + `]}]`,
			Policy{}, "", []string{"b24.events.p1.ONCRMDEALADD", "b24.events.p2.ONCRMDEALADD"}},
		{"unknown key", `destinations: [{name: crm, url: "https://x.example.com", recieves: {}}]`, Policy{}, "field recieves not found", nil},
		{"http refused", `destinations: [{name: crm, url: "http://x.example.com", receives: {changes: [deal]}, secret_files: [` + key + `]}]`, Policy{}, "must be https", nil},
		{"http allowed locally", `destinations: [{name: crm, url: "http://x.example.com", receives: {changes: [deal]}, secret_files: [` + key + `]}]`, Policy{AllowHTTP: true}, "", []string{"b24.changes.deal.*.*"}},
		{"host not allowed", `destinations: [{name: crm, url: "https://evil.example.org", receives: {changes: [deal]}, secret_files: [` + key + `]}]`, Policy{AllowedHosts: []string{"*.example.com"}}, "not in B24HUB_DESTINATIONS_ALLOWED_HOSTS", nil},
		{"host allowed by suffix", `destinations: [{name: crm, url: "https://a.example.com", receives: {changes: [deal]}, secret_files: [` + key + `]}]`, Policy{AllowedHosts: []string{"*.example.com"}}, "", []string{"b24.changes.deal.*.*"}},
		{"both kinds", `destinations: [{name: crm, url: "https://a.example.com", receives: {changes: [deal], events: [X]}, secret_files: [` + key + `]}]`, Policy{}, "not both", nil},
		{"no secret", `destinations: [{name: crm, url: "https://a.example.com", receives: {changes: [deal]}}]`, Policy{}, "secret_files", nil},
		{"three secrets", `destinations: [{name: crm, url: "https://a.example.com", receives: {changes: [deal]}, secret_files: [` + key + `,` + key + `,` + key + `]}]`, Policy{}, "secret_files", nil},
		{"bad timeout", `destinations: [{name: crm, url: "https://a.example.com", receives: {changes: [deal]}, secret_files: [` + key + `], timeout: soon}]`, Policy{}, "timeout", nil},
		{"twice", `destinations: [{name: crm, url: "https://a.example.com", receives: {changes: [deal]}, secret_files: [` + key + `]}, {name: crm, url: "https://a.example.com", receives: {changes: [deal]}, secret_files: [` + key + `]}]`, Policy{}, "declared twice", nil},
		{"credentials in url", `destinations: [{name: crm, url: "https://u:p@a.example.com", receives: {changes: [deal]}, secret_files: [` + key + `]}]`, Policy{}, "credentials", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Parse([]byte(tt.yaml), tt.policy)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ds[0].Subjects; strings.Join(got, ",") != strings.Join(tt.subjects, ",") {
				t.Errorf("subjects %v, want %v", got, tt.subjects)
			}
			if ds[0].Durable() != "dest-crm" || len(ds[0].Secrets) != 1 || ds[0].Timeout != DefaultTimeout {
				t.Errorf("destination %+v", ds[0])
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	for _, s := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!", "whsec_c2hvcnQ="} {
		if _, err := ParseSecret(s); err == nil {
			t.Errorf("ParseSecret(%q) accepted", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`destinations: [{name: crm, url: "https://a.example.com", receives: {changes: [deal]}}]`))
	f.Add([]byte(`destinations: [{name: x, receives: {events: ["*"], portals: ["a.b"]}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := Parse(data, Policy{})
		if err != nil {
			return
		}
		for _, d := range ds {
			if d.URL == nil || d.URL.Scheme != "https" || len(d.Subjects) == 0 || len(d.Secrets) == 0 {
				t.Fatalf("accepted an unusable destination %+v", d)
			}
		}
	})
}
