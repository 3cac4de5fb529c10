package ingress

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClientIP: X-Forwarded-For counts only from a configured proxy, so a
// client cannot choose the address its installs are counted by.
func TestClientIP(t *testing.T) {
	cfg, err := ConfigFromEnv(func(k string) string {
		if k == "B24HUB_INGRESS_TRUSTED_PROXIES" {
			return "10.42.0.0/16, 192.0.2.1/32"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, remote, xff, want string
		trusted                 bool
	}{
		{"no proxies: the peer", "203.0.113.7:1", "1.2.3.4", "203.0.113.7", false},
		{"trusted proxy: the client it names", "10.42.3.4:1", "198.51.100.9", "198.51.100.9", true},
		{"trusted chain: the first untrusted hop", "10.42.3.4:1", "1.2.3.4, 198.51.100.9, 10.42.0.7", "198.51.100.9", true},
		{"untrusted peer: header ignored", "203.0.113.7:1", "1.2.3.4", "203.0.113.7", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extract := clientIP(nil)
			if tt.trusted {
				extract = clientIP(cfg.TrustedProxies)
			}
			req := httptest.NewRequest("POST", "/", nil)
			req.RemoteAddr = tt.remote
			req.Header.Set("X-Forwarded-For", tt.xff)
			if got := extract(req); got != tt.want {
				t.Errorf("client = %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := ConfigFromEnv(func(k string) string {
		if k == "B24HUB_INGRESS_TRUSTED_PROXIES" {
			return "10.0.0.0/8,gateway"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), `"gateway" is not a CIDR`) {
		t.Fatalf("bad proxy list: %v", err)
	}
}
