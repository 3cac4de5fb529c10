package subscriptions

import (
	"strings"
	"testing"
	"time"
)

const testKey = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", env: map[string]string{"B24HUB_CREDENTIALS_KEY": testKey}, check: func(t *testing.T, c Config) {
			if c.SyncInterval != 10*time.Minute || c.ReconcileInterval != 5*time.Minute || c.OfflinePollInterval != time.Minute ||
				c.ProbeInterval != 5*time.Minute || c.LeaseTTL != 15*time.Second || len(c.CredentialsKey) != 32 || c.InstanceID == "" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "missing key", env: map[string]string{}, wantErr: "openssl rand -base64 32"},
		{name: "short key", env: map[string]string{"B24HUB_CREDENTIALS_KEY": "AQID"}, wantErr: "want 32"},
		{name: "bad duration", env: map[string]string{"B24HUB_CREDENTIALS_KEY": testKey, "B24HUB_RECONCILE_INTERVAL": "soon"}, wantErr: "B24HUB_RECONCILE_INTERVAL"},
		{name: "zero sync", env: map[string]string{"B24HUB_CREDENTIALS_KEY": testKey, "B24HUB_SYNC_INTERVAL": "0s"}, wantErr: "B24HUB_SYNC_INTERVAL"},
		{name: "probe off", env: map[string]string{"B24HUB_CREDENTIALS_KEY": testKey, "B24HUB_PROBE_INTERVAL": "0"}, check: func(t *testing.T, c Config) {
			if c.ProbeInterval != 0 {
				t.Errorf("probe = %s", c.ProbeInterval)
			}
		}},
		{name: "lists and secrets", env: map[string]string{"B24HUB_CREDENTIALS_KEY": testKey, "B24HUB_INSTALL_ALLOWED_HOSTS": " a.example.com, 10.0.0.1:8443 ,",
			"B24HUB_APP_CLIENT_SECRET": "s3cret", "B24HUB_HANDLER_URL": "https://h.example.com/"}, check: func(t *testing.T, c Config) {
			if len(c.AllowedHosts) != 2 || c.AppClientSecret != "s3cret" || c.HandlerURL != "https://h.example.com" {
				t.Errorf("config: %+v", c)
			}
			if s := c.String(); strings.Contains(s, "s3cret") || strings.Contains(s, testKey) {
				t.Errorf("String leaks a secret: %s", s)
			}
		}},
		{name: "both secret forms", env: map[string]string{"B24HUB_CREDENTIALS_KEY": testKey, "B24HUB_APP_CLIENT_SECRET": "a", "B24HUB_APP_CLIENT_SECRET_FILE": "/x"}, wantErr: "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
