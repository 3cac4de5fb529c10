package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/b24hub/b24hub/libs/buildinfo"
	"github.com/spf13/cobra"
)

// buildInfo is what `b24ctl version` prints.
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// version is this build as libs/buildinfo reads it (the link-time version
// the release build sets, else the module version, else the VCS
// revision), the same answer every service gives; Env.Version overrides
// the version.
func (a *app) version() buildInfo {
	in := buildinfo.Read()
	b := buildInfo{Version: in.Version, Revision: in.Revision, Time: in.Time, Modified: in.Modified,
		GoVersion: or(in.GoVersion, runtime.Version()), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if a.env.Version != "" {
		b.Version = a.env.Version
	}
	return b
}

func (a *app) versionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "print the b24ctl version, revision and Go version",
		Example: "  b24ctl version\n  b24ctl version -o json",
		Args:    noArgs,
	}
	out := outputFlag(cmd)
	cmd.RunE = action(func(context.Context, *cobra.Command, []string) error {
		b := a.version()
		return printerFor(*out, a.env.Stdout).print(b, func(w io.Writer) {
			fmt.Fprintf(w, "b24ctl %s", b.Version)
			if b.Revision != "" {
				fmt.Fprintf(w, " (revision %s", b.Revision[:min(12, len(b.Revision))])
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
