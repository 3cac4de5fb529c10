package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/natstest"
)

// b24ctl connects as the identity it is given, the ways the nats CLI takes
// one (flag, environment, context), with the inbox prefix its user may
// read; without an identity the server refuses it, and `topology apply`
// runs as the admin identity.
func TestNATSIdentity(t *testing.T) {
	srv := natstest.Start(t, natstest.WithIdentities(
		natstest.Identity{User: OperatorUser, Publish: []string{"$JS.API.STREAM.INFO.>", "$JS.API.CONSUMER.LIST.>"}, Subscribe: []string{"_INBOX.b24ctl.>"}},
		natstest.Identity{User: AdminUser, Publish: []string{"$JS.API.>"}, Subscribe: []string{"_INBOX.topology.>"}},
	))
	operator, admin := srv.SeedFile(t, OperatorUser), srv.SeedFile(t, AdminUser)
	ctxFile := filepath.Join(t.TempDir(), "ops.json")
	b, _ := json.Marshal(map[string]string{"url": srv.URL(), "nkey": operator, "description": "operator"})
	if err := os.WriteFile(ctxFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	url := map[string]string{"B24HUB_NATS_URL": srv.URL()}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"no identity", url, []string{"topology", "show", "--timeout", "3s"}, ExitUnavailable},
		{"nkey flag", url, []string{"topology", "show", "--nats-nkey", operator}, ExitFindings},
		{"nkey from the environment", map[string]string{"B24HUB_NATS_URL": srv.URL(), "B24HUB_NATS_NKEY": operator}, []string{"topology", "show"}, ExitFindings},
		{"nats context", nil, []string{"topology", "show", "--nats-context", ctxFile}, ExitFindings},
		{"apply needs the admin", url, []string{"topology", "apply", "--timeout", "3s", "--nats-nkey", operator}, ExitError},
		{"apply as the admin", url, []string{"topology", "apply", "--nats-nkey", admin}, ExitOK},
		{"show after apply", url, []string{"topology", "show", "--nats-nkey", operator}, ExitOK},
		{"two identities", url, []string{"topology", "show", "--nats-nkey", operator, "--nats-user", "x"}, ExitUsage},
	}
	for _, tt := range tests {
		r := run(t, tt.env, "", tt.args...)
		if r.code != tt.code {
			t.Errorf("%s: exit %d, want %d: %s%s", tt.name, r.code, tt.code, r.stdout, r.stderr)
		}
		if tt.name == "two identities" && !strings.Contains(r.stderr, "one identity per connection") {
			t.Errorf("%s: %s", tt.name, r.stderr)
		}
	}
}
