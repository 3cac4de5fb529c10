package bitrixport_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
)

func TestAppFromEnv(t *testing.T) {
	const key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=" // 32 × 0x07
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		env        map[string]string
		wantErr    string
		canRefresh bool
		oldKeys    int
	}{
		{name: "nothing: webhooks only", env: map[string]string{}},
		{name: "everything", env: map[string]string{"B24HUB_APP_CLIENT_ID": "local.x", "B24HUB_APP_CLIENT_SECRET": "s3cret",
			"B24HUB_CREDENTIALS_KEY": key}, canRefresh: true},
		{name: "from files", env: map[string]string{"B24HUB_APP_CLIENT_ID": "local.x", "B24HUB_APP_CLIENT_SECRET_FILE": secretFile,
			"B24HUB_CREDENTIALS_KEY_FILE": keyFile}, canRefresh: true},
		{name: "old keys", env: map[string]string{"B24HUB_APP_CLIENT_ID": "local.x", "B24HUB_APP_CLIENT_SECRET": "s3cret",
			"B24HUB_CREDENTIALS_KEY": key, "B24HUB_CREDENTIALS_OLD_KEYS": " " + key + ", AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE ,"}, canRefresh: true, oldKeys: 2},
		{name: "key without app", env: map[string]string{"B24HUB_CREDENTIALS_KEY": key}},
		{name: "short key", env: map[string]string{"B24HUB_CREDENTIALS_KEY": "AQID"}, wantErr: "B24HUB_CREDENTIALS_KEY"},
		{name: "bad old key", env: map[string]string{"B24HUB_CREDENTIALS_KEY": key, "B24HUB_CREDENTIALS_OLD_KEYS": "nope!"}, wantErr: "B24HUB_CREDENTIALS_OLD_KEYS"},
		{name: "old keys alone", env: map[string]string{"B24HUB_CREDENTIALS_OLD_KEYS": key}, wantErr: "without B24HUB_CREDENTIALS_KEY"},
		{name: "both secret forms", env: map[string]string{"B24HUB_APP_CLIENT_SECRET": "a", "B24HUB_APP_CLIENT_SECRET_FILE": secretFile}, wantErr: "not both"},
		{name: "allowed hosts", env: map[string]string{"B24HUB_INSTALL_ALLOWED_HOSTS": "crm.example.com, 127.0.0.1:8443"}},
		{name: "allowed host as a URL", env: map[string]string{"B24HUB_INSTALL_ALLOWED_HOSTS": "https://crm.example.com/"}, wantErr: "B24HUB_INSTALL_ALLOWED_HOSTS"},
		{name: "missing key file", env: map[string]string{"B24HUB_CREDENTIALS_KEY_FILE": filepath.Join(dir, "nope")}, wantErr: "B24HUB_CREDENTIALS_KEY_FILE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := bitrixport.AppFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), key) {
					t.Fatalf("error repeats the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.CanRefresh() != tt.canRefresh || len(a.OldCredentialsKeys) != tt.oldKeys {
				t.Fatalf("app = %s, CanRefresh %v", a, a.CanRefresh())
			}
			if s := a.String(); strings.Contains(s, "s3cret") || strings.Contains(s, key) {
				t.Fatalf("String leaks a secret: %s", s)
			}
			if len(a.CredentialsKey) > 0 {
				if _, err := a.Cipher(); err != nil {
					t.Fatal(err)
				}
			} else if _, err := a.Cipher(); err == nil {
				t.Fatal("Cipher without a key")
			}
		})
	}
}
