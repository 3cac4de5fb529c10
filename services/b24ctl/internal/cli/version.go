package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo is what `b24ctl version` prints.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// version is the release version stamped with -ldflags, else the module
// version Go recorded (a `go install …@vX` build), else "dev"; the commit
// comes from the VCS stamp when the build had one.
func (a *app) version() buildInfo {
	b := buildInfo{Version: a.env.Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

func (a *app) versionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "print the b24ctl version, commit and Go version",
		Example: "  b24ctl version\n  b24ctl version -o json",
		Args:    noArgs,
	}
	out := outputFlag(cmd)
	cmd.RunE = action(func(context.Context, *cobra.Command, []string) error {
		b := a.version()
		return printerFor(*out, a.env.Stdout).print(b, func(w io.Writer) {
			fmt.Fprintf(w, "b24ctl %s", b.Version)
			if b.Commit != "" {
				fmt.Fprintf(w, " (commit %s", b.Commit)
				if b.Modified {
					fmt.Fprint(w, ", modified")
				}
				fmt.Fprint(w, ")")
			}
			fmt.Fprintf(w, " %s %s\n", b.GoVersion, b.Platform)
		})
	})
	return cmd
}
