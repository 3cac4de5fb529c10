package bitrixport

import (
	"errors"
	"fmt"
	"github.com/b24hub/b24hub/libs/bitrix/allowlist"
	"os"
	"strings"

	"github.com/b24hub/b24hub/libs/bitrix"
)

// App is the Bitrix24 application b24hub is installed as: what a service
// needs to call the portals that installed it (OAuth, ONAPPINSTALL) rather
// than the ones configured with an incoming webhook. The subscriptions
// service stores each install's tokens in B24_TOKENS sealed with
// CredentialsKey; every service calling those portals opens them with the
// same key and refreshes them with ClientID and ClientSecret. Read it with
// AppFromEnv; the zero value calls webhook portals only.
type App struct {
	// ClientID and ClientSecret are the application's OAuth credentials,
	// sent to the portal's OAuth server on every token refresh.
	// B24HUB_APP_CLIENT_ID and B24HUB_APP_CLIENT_SECRET (or
	// B24HUB_APP_CLIENT_SECRET_FILE). Optional; without them installed
	// portals cannot be called. The secret is never logged.
	ClientID     string
	ClientSecret string // see ClientID
	// CredentialsKey is the AES-256 key the stored tokens are sealed with
	// (bitrix.TokenCipher). B24HUB_CREDENTIALS_KEY or
	// B24HUB_CREDENTIALS_KEY_FILE: base64 of 32 bytes, e.g. from `openssl
	// rand -base64 32`. Optional for consumers (required by the
	// subscriptions service); never logged.
	CredentialsKey []byte
	// OldCredentialsKeys are previous keys still accepted for reading
	// during a key rotation. B24HUB_CREDENTIALS_OLD_KEYS (comma-separated
	// base64), optional.
	OldCredentialsKeys [][]byte
	// AllowedHosts are the on-premise portal hosts (host or host:port) a
	// portal's redirect may lead to, besides Bitrix24 cloud domains over
	// https; the same list the subscriptions service checks installs
	// against. B24HUB_INSTALL_ALLOWED_HOSTS (comma-separated), optional.
	AllowedHosts *allowlist.List
}

// AppFromEnv reads the application settings. Every variable is optional;
// it fails on a value that does not parse (a key that is not base64 of 32
// bytes, a secret file that cannot be read, NAME and NAME_FILE both set),
// naming the variable but never its value.
func AppFromEnv(getenv func(string) string) (App, error) {
	a := App{ClientID: strings.TrimSpace(getenv("B24HUB_APP_CLIENT_ID"))}
	var errs []error
	var err error
	if a.ClientSecret, err = secretFromEnv(getenv, "B24HUB_APP_CLIENT_SECRET"); err != nil {
		errs = append(errs, err)
	}
	key, err := secretFromEnv(getenv, "B24HUB_CREDENTIALS_KEY")
	switch {
	case err != nil:
		errs = append(errs, err)
	case key != "":
		if a.CredentialsKey, err = bitrix.ParseTokenKey(key); err != nil {
			errs = append(errs, fmt.Errorf("B24HUB_CREDENTIALS_KEY: %w", err))
		}
	}
	for _, k := range strings.Split(getenv("B24HUB_CREDENTIALS_OLD_KEYS"), ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		b, err := bitrix.ParseTokenKey(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("B24HUB_CREDENTIALS_OLD_KEYS: %w", err))
			continue
		}
		a.OldCredentialsKeys = append(a.OldCredentialsKeys, b)
	}
	if a.AllowedHosts, err = allowlist.New(strings.Split(getenv("B24HUB_INSTALL_ALLOWED_HOSTS"), ",")); err != nil {
		errs = append(errs, fmt.Errorf("B24HUB_INSTALL_ALLOWED_HOSTS: %w", err))
	}
	if key == "" && getenv("B24HUB_CREDENTIALS_OLD_KEYS") != "" {
		errs = append(errs, errors.New("B24HUB_CREDENTIALS_OLD_KEYS is set without B24HUB_CREDENTIALS_KEY"))
	}
	return a, errors.Join(errs...)
}

// CanRefresh reports whether installed portals can be called: the tokens
// can be opened and refreshed.
func (a App) CanRefresh() bool {
	return len(a.CredentialsKey) > 0 && a.ClientID != "" && a.ClientSecret != ""
}

// String renders the settings for logs with every secret masked.
func (a App) String() string {
	mask := func(set bool) string {
		if set {
			return "***"
		}
		return `""`
	}
	return fmt.Sprintf("app_client_id=%q app_client_secret=%s credentials_key=%s old_credentials_keys=%d",
		a.ClientID, mask(a.ClientSecret != ""), mask(len(a.CredentialsKey) > 0), len(a.OldCredentialsKeys))
}

// Cipher returns the token cipher for CredentialsKey (and the old keys).
// It fails when no key is set.
func (a App) Cipher() (*bitrix.TokenCipher, error) {
	if len(a.CredentialsKey) == 0 {
		return nil, errors.New("bitrixport: B24HUB_CREDENTIALS_KEY is not set")
	}
	return bitrix.NewTokenCipher(a.CredentialsKey, a.OldCredentialsKeys...)
}

// secretFromEnv reads NAME, or the file named by NAME_FILE (not both),
// trimmed of surrounding space.
func secretFromEnv(getenv func(string) string, name string) (string, error) {
	v, path := getenv(name), getenv(name+"_FILE")
	if path == "" {
		return strings.TrimSpace(v), nil
	}
	if v != "" {
		return "", fmt.Errorf("set %s or %s_FILE, not both", name, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}
