package allowlist

import (
	"errors"
	"testing"
)

func TestPortal(t *testing.T) {
	l, err := New([]string{"127.0.0.1:8443", "crm.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://acme.bitrix24.com/rest/", true},
		{"https://acme.bitrix24.com.br/rest/", true},
		{"https://acme.bitrix24.de:443/rest/", true},
		{"http://acme.bitrix24.com/rest/", false},           // cloud over http
		{"https://acme.bitrix24.com:8080/rest/", false},     // odd port
		{"https://evil.com/rest/", false},                   // not Bitrix24
		{"https://a.b.bitrix24.com/rest/", false},           // two labels
		{"https://bitrix24.com/rest/", false},               // no label
		{"https://acme.bitrix24.com.evil.com/rest/", false}, // suffix trick
		{"https://acme.bitrix24.com/api/", false},           // not /rest/
		{"https://u:p@acme.bitrix24.com/rest/", false},      // user info
		{"https://acme.bitrix24.com/rest/?x=1", false},      // query
		{"ftp://acme.bitrix24.com/rest/", false},
		{"http://127.0.0.1:8443/rest/", true},  // configured, http allowed
		{"http://127.0.0.1:9999/rest/", false}, // other port
		{"http://127.0.0.1/rest/", false},
		{"https://crm.example.com/rest/", true},
		{"http://crm.example.com/rest/", true},
		{"https://169.254.169.254/rest/", false},
		{"::", false},
	}
	for _, tt := range tests {
		_, err := l.Portal(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("Portal(%q) err = %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Portal(%q) error %v does not wrap ErrNotAllowed", tt.url, err)
		}
	}
}

func TestOAuthServer(t *testing.T) {
	l, _ := New([]string{"127.0.0.1:8443"})
	for raw, ok := range map[string]bool{
		"https://oauth.bitrix.info/rest/":   true,
		"https://oauth.bitrix24.tech/rest/": true,
		"http://oauth.bitrix.info/rest/":    false,
		"https://oauth.evil.com/rest/":      false,
		"http://127.0.0.1:8443/rest/":       true,
	} {
		if _, err := l.OAuthServer(raw); (err == nil) != ok {
			t.Errorf("OAuthServer(%q) err = %v, want ok=%v", raw, err, ok)
		}
	}
}

func TestNewRejectsURLs(t *testing.T) {
	if _, err := New([]string{"https://x.example.com/"}); err == nil {
		t.Fatal("URL accepted as a host")
	}
}

// FuzzPortal checks that no input is accepted unless its host is a cloud
// portal on https:443 or the configured host, and that nothing panics.
func FuzzPortal(f *testing.F) {
	for _, s := range []string{"https://acme.bitrix24.com/rest/", "http://127.0.0.1:8443/rest/", "https://x.bitrix24.com.evil.com/rest/",
		"https://acme.bitrix24.com@evil.com/rest/", "https://[::1]/rest/", "https://ACME.Bitrix24.COM/rest/app.info"} {
		f.Add(s)
	}
	l, _ := New([]string{"127.0.0.1:8443"})
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := l.Portal(raw)
		if err != nil {
			return
		}
		if u.User != nil || u.RawQuery != "" {
			t.Fatalf("accepted %q with user info or query", raw)
		}
		if u.Host == "127.0.0.1:8443" {
			return
		}
		if u.Scheme != "https" || !cloudHost(u.Hostname()) {
			t.Fatalf("accepted %q (host %q)", raw, u.Host)
		}
	})
}
