package webhook

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"encoding/base64"
	"net/http"
)

// The example of the Standard Webhooks specification: secret, id,
// timestamp and payload give this signature.
func TestSignMatchesTheSpecificationExample(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	got := Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`), [][]byte{key})
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
}

// During a rotation there is one signature per secret, space-separated.
func TestSignOnePerSecret(t *testing.T) {
	got := Sign("id", time.Unix(1, 0), []byte("{}"), [][]byte{[]byte("aaaaaaaaaaaaaaaaaaaaaaaa"), []byte("bbbbbbbbbbbbbbbbbbbbbbbb")})
	parts := strings.Split(got, " ")
	if len(parts) != 2 || parts[0] == parts[1] || !strings.HasPrefix(parts[1], "v1,") {
		t.Fatalf("signatures %q", got)
	}
}

func TestCheckAddress(t *testing.T) {
	tests := []struct {
		addr    string
		allowed []netip.Prefix
		ok      bool
	}{
		{"93.184.216.34:443", nil, true},
		{"127.0.0.1:443", nil, false},
		{"[::1]:443", nil, false},
		{"10.1.2.3:443", nil, false},
		{"192.168.0.1:443", nil, false},
		{"169.254.169.254:80", nil, false},
		{"100.64.0.1:443", nil, false},
		{"0.0.0.0:443", nil, false},
		{"[::ffff:127.0.0.1]:443", nil, false},
		{"[fe80::1]:443", nil, false},
		{"10.1.2.3:443", []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, true},
		{"10.2.2.3:443", []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, false},
	}
	for _, tt := range tests {
		err := checkAddress(tt.addr, tt.allowed)
		if (err == nil) != tt.ok {
			t.Errorf("checkAddress(%s, %v) = %v, want ok=%v", tt.addr, tt.allowed, err, tt.ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.v, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
