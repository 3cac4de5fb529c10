// Package buildinfo says which build of b24hub a binary is: its version,
// VCS revision and Go version. Every service answers `<service> version`
// with it, b24ctl has `b24ctl version`, and telemetry puts the version on
// the OpenTelemetry resource as service.version.
//
// Release builds set the version at link time (the Dockerfiles do):
//
//	go build -ldflags "-X github.com/b24hub/b24hub/libs/buildinfo.version=v1.2.3" ./cmd/ingress
//
// Without it the version falls back to what the Go toolchain recorded in
// the binary: the main module's version when it was built with
// `go install module@version`, else the VCS revision (with a "-dirty"
// suffix when the work tree was modified; needs -buildvcs, on by default
// in a git checkout), else "devel".
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// version is set with -ldflags "-X github.com/b24hub/b24hub/libs/buildinfo.version=...".
// A variable, not a constant, because -X can only set string variables.
var version string

// Devel is the version of a binary that carries neither a link-time
// version, a module version nor a VCS revision (e.g. `go run` or
// -buildvcs=false).
const Devel = "devel"

// Info is what a binary knows about its own build.
type Info struct {
	// Version is the link-time version, else the module version, else the
	// short VCS revision, else Devel. Never empty.
	Version string
	// Revision is the full VCS revision, or "" when not recorded.
	Revision string
	// Time is the commit time of Revision (RFC 3339), or "".
	Time string
	// Modified reports whether the work tree had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary (e.g. "go1.26.4").
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuild(version, bi, ok)
}

// Version returns the running binary's version (Info.Version).
func Version() string { return Read().Version }

// fromBuild combines the link-time version with what the toolchain
// recorded, so the fallback order is testable without relinking.
func fromBuild(linked string, bi *debug.BuildInfo, ok bool) Info {
	var in Info
	if ok && bi != nil {
		in.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	switch {
	case strings.TrimSpace(linked) != "":
		in.Version = strings.TrimSpace(linked)
	case ok && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)":
		in.Version = bi.Main.Version
	case in.Revision != "":
		in.Version = in.Revision[:min(12, len(in.Revision))]
		if in.Modified {
			in.Version += "-dirty"
		}
	default:
		in.Version = Devel
	}
	return in
}

// String is the one-line form `version` commands print, e.g.
// "v1.2.3 (revision 0123456789ab, go1.26.4)".
func (in Info) String() string {
	var parts []string
	if in.Revision != "" && !strings.HasPrefix(in.Version, in.Revision[:min(12, len(in.Revision))]) {
		r := "revision " + in.Revision[:min(12, len(in.Revision))]
		if in.Modified {
			r += ", modified"
		}
		parts = append(parts, r)
	}
	if in.GoVersion != "" {
		parts = append(parts, in.GoVersion)
	}
	if len(parts) == 0 {
		return in.Version
	}
	return fmt.Sprintf("%s (%s)", in.Version, strings.Join(parts, ", "))
}
