package svcmain_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/svcmain"
)

type settings struct {
	Wait   time.Duration `env:"B24HUB_T_WAIT" envDefault:"5s"`
	Probe  time.Duration `env:"B24HUB_T_PROBE" envDefault:"1m" zero:"disables the probe"`
	Size   int           `env:"B24HUB_T_SIZE" envDefault:"10"`
	Name   string        `env:"B24HUB_T_NAME,required"`
	Hosts  []string      `env:"B24HUB_T_HOSTS"`
	Secret string        `env:"B24HUB_T_SECRET_FILE,file"`
}

func (s settings) Validate() error {
	if s.Size > 100 {
		return errTooBig
	}
	return nil
}

var errTooBig = os.ErrInvalid

func TestParseEnv(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		env   map[string]string
		want  []string // substrings of the error; nil = no error
		check func(*testing.T, settings)
	}{
		{"defaults", map[string]string{"B24HUB_T_NAME": "x"}, nil, func(t *testing.T, s settings) {
			if s.Wait != 5*time.Second || s.Probe != time.Minute || s.Size != 10 || s.Hosts != nil {
				t.Errorf("defaults: %+v", s)
			}
		}},
		{"values and a file secret", map[string]string{"B24HUB_T_NAME": "x", "B24HUB_T_WAIT": "2m", "B24HUB_T_PROBE": "0",
			"B24HUB_T_HOSTS": "a,b", "B24HUB_T_SECRET_FILE": secret}, nil, func(t *testing.T, s settings) {
			if s.Wait != 2*time.Minute || s.Probe != 0 || len(s.Hosts) != 2 || s.Secret != "s3cret" {
				t.Errorf("values: %+v", s)
			}
		}},
		{"required", map[string]string{}, []string{"B24HUB_T_NAME"}, nil},
		{"every bad value named at once", map[string]string{"B24HUB_T_NAME": "x", "B24HUB_T_WAIT": "soon", "B24HUB_T_SIZE": "ten"},
			[]string{`B24HUB_T_WAIT="soon"`, `B24HUB_T_SIZE="ten"`}, nil},
		{"zero duration", map[string]string{"B24HUB_T_NAME": "x", "B24HUB_T_WAIT": "0s"}, []string{`B24HUB_T_WAIT="0s": want a positive duration`}, nil},
		{"negative duration", map[string]string{"B24HUB_T_NAME": "x", "B24HUB_T_PROBE": "-1s"}, []string{"B24HUB_T_PROBE"}, nil},
		{"missing file", map[string]string{"B24HUB_T_NAME": "x", "B24HUB_T_SECRET_FILE": "/nonexistent/x"}, []string{"/nonexistent/x"}, nil},
		{"validate", map[string]string{"B24HUB_T_NAME": "x", "B24HUB_T_SIZE": "101"}, []string{"invalid argument"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s settings
			err := svcmain.ParseEnv(func(k string) string { return tt.env[k] }, &s)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, s)
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
