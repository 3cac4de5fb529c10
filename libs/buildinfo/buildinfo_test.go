package buildinfo

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuild(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name   string
		linked string
		bi     *debug.BuildInfo
		ok     bool
		want   string
		str    string
	}{
		{"link-time version wins", "v1.2.3", &debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "v0.9.0"}, Settings: vcs("false")}, true,
			"v1.2.3", "v1.2.3 (revision 0123456789ab, go1.26.4)"},
		{"link-time version trimmed", " v1.2.3\n", nil, false, "v1.2.3", "v1.2.3"},
		{"module version", "", &debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "v0.9.0"}}, true,
			"v0.9.0", "v0.9.0 (go1.26.4)"},
		{"revision when the module is (devel)", "", &debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")}, true,
			"0123456789ab", "0123456789ab (go1.26.4)"},
		{"modified work tree", "", &debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")}, true,
			"0123456789ab-dirty", "0123456789ab-dirty (go1.26.4)"},
		{"link-time version of a modified tree", "v1.2.3", &debug.BuildInfo{Settings: vcs("true")}, true,
			"v1.2.3", "v1.2.3 (revision 0123456789ab, modified)"},
		{"nothing recorded", "", &debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "(devel)"}}, true,
			Devel, "devel (go1.26.4)"},
		{"no build info", "", nil, false, Devel, Devel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fromBuild(tc.linked, tc.bi, tc.ok)
			if in.Version != tc.want {
				t.Errorf("Version = %q, want %q", in.Version, tc.want)
			}
			if got := in.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
		})
	}
}

func TestReadNeverEmpty(t *testing.T) {
	if in := Read(); in.Version == "" || in.GoVersion == "" {
		t.Fatalf("Read() = %+v, want a version and a Go version", in)
	}
}

// TestLinkTimeVersion links a binary the way the Dockerfiles do, so the
// variable name documented in the package comment is proven to work.
func TestLinkTimeVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("links a binary")
	}
	bin := filepath.Join(t.TempDir(), "printversion")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/b24hub/b24hub/libs/buildinfo.version=v9.8.7", "./testdata/printversion")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "v9.8.7" {
		t.Fatalf("linked binary says %q, want v9.8.7", got)
	}
}
