package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/b24ctl/internal/loadgen"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

func (a *app) simulateCmd() *cobra.Command {
	var (
		ingressURL, events    string
		portalArgs, members   []string
		rate                  float64
		duration              time.Duration
		requests, concurrency int
		allowRemote           bool
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "post realistic events to an ingress at a rate for a time; report latency percentiles and errors",
		Long: `simulate posts realistic event bodies for the chosen portals and event types to
an ingress at --rate per second for --duration, then reports requests, status
counts, transport errors and latency percentiles. Ctrl-C stops sending; the
requests in flight are awaited and the report covers what was sent.`,
		Example: "  b24ctl simulate --ingress-url http://127.0.0.1:8080 --portals-file .data/portals.yaml --events ONCRMDEALUPDATE,ONTASKUPDATE --rate 200 --duration 30s",
		Args:    noArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&ingressURL, "ingress-url", "http://127.0.0.1:8080", "ingress base URL (loopback only unless --allow-remote)")
	portalsFile := a.portalsFileFlag(cmd)
	fs.StringArrayVar(&members, "member-id", nil, "with --portals-file: only this portal (repeatable)")
	fs.StringArrayVar(&portalArgs, "portal", nil, "MEMBER_ID:APPLICATION_TOKEN of a portal to simulate (repeatable)")
	fs.StringVar(&events, "events", "ONCRMDEALUPDATE", "comma-separated event codes")
	fs.Float64Var(&rate, "rate", 50, fmt.Sprintf("requests per second (at most %d)", loadgen.MaxRate))
	fs.DurationVar(&duration, "duration", 10*time.Second, fmt.Sprintf("how long to send (at most %s)", loadgen.MaxDuration))
	fs.IntVar(&requests, "requests", 0, "stop after this many requests (0: rate × duration)")
	fs.IntVar(&concurrency, "concurrency", 64, "requests in flight at most")
	fs.BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback ingress URL")
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		ps, err := simPortals(*portalsFile, members, portalArgs)
		if err != nil {
			return err
		}
		cfg := loadgen.Config{
			URL: strings.TrimRight(ingressURL, "/") + "/bitrix24/events", AllowRemote: allowRemote, Portals: ps,
			Events: splitEvents(events), Rate: rate, Duration: duration, Requests: requests, Concurrency: concurrency,
		}
		if err := cfg.Validate(); err != nil {
			return usageErr("%v", err)
		}
		bar := a.progress("simulate", int64(cfg.Planned()))
		cfg.Progress = func(done, planned int64) { bar.set(done, fmt.Sprintf("%d/%d", done, planned)) }
		rep, err := loadgen.Run(ctx, cfg) // ctx ends on Ctrl-C: sending stops, the report stays
		bar.done()
		if err != nil {
			return fail(ExitError, "%v", err)
		}
		if err := printerFor(*out, a.env.Stdout).print(rep, func(w io.Writer) { printReport(w, rep) }); err != nil {
			return err
		}
		switch {
		case rep.Interrupted:
			return failShown(ExitInterrupted, "interrupted after %d requests", rep.Requests)
		case rep.Requests > 0 && rep.OK == 0 && len(rep.Errors) > 0:
			return failShown(ExitUnavailable, "no request reached the ingress at %s (%v) — start the local stack or fix --ingress-url", ingressURL, keys(rep.Errors))
		case rep.Failed > 0:
			return fail(ExitFindings, "failed requests")
		}
		return nil
	})
	return cmd
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func splitEvents(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.ToUpper(strings.TrimSpace(e)); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// simPortals collects the portals to simulate from --portal and the
// portals file (whose tokens are needed, so they are read here, never
// printed).
func simPortals(file string, members, args []string) ([]loadgen.Portal, error) {
	var out []loadgen.Portal
	for _, a := range args {
		m, tok, ok := strings.Cut(a, ":")
		if !ok || m == "" || tok == "" {
			return nil, usageErr("--portal %q: want MEMBER_ID:APPLICATION_TOKEN", a)
		}
		out = append(out, loadgen.Portal{MemberID: m, ApplicationToken: tok})
	}
	if file != "" && (len(args) == 0 || len(members) > 0) {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fail(ExitError, "%v — pass --portals-file or --portal MEMBER_ID:TOKEN", err)
		}
		if _, err := portals.ParseFile(data); err != nil { // validates and resolves token files
			return nil, fail(ExitError, "%s: %v", file, err)
		}
		var f portals.File
		if err := yaml.Unmarshal(data, &f); err != nil {
			return nil, fail(ExitError, "%s: %v", file, err)
		}
		for _, fp := range f.Portals {
			if len(members) > 0 && !slices.Contains(members, fp.MemberID) || fp.Active != nil && !*fp.Active {
				continue
			}
			tok := fp.ApplicationToken
			if fp.ApplicationTokenFile != "" {
				b, err := os.ReadFile(fp.ApplicationTokenFile)
				if err != nil {
					return nil, fail(ExitError, "portal %s: %v", fp.MemberID, err)
				}
				tok = strings.TrimSpace(string(b))
			}
			out = append(out, loadgen.Portal{MemberID: fp.MemberID, Domain: fp.Domain, ApplicationToken: tok})
		}
	}
	if len(out) == 0 {
		return nil, usageErr("no portal to simulate: pass --portal MEMBER_ID:APPLICATION_TOKEN or --portals-file (the local stack writes .data/portals.yaml)")
	}
	return out, nil
}

func printReport(w io.Writer, r loadgen.Report) {
	fmt.Fprintf(w, "requests %d in %.1fs (%.1f/s): %d ok, %d failed\n", r.Requests, r.ElapsedSecs, r.RatePerSec, r.OK, r.Failed)
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted: sending stopped early")
	}
	fmt.Fprintf(w, "latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max)
	for _, k := range keys(r.ByStatus) {
		fmt.Fprintf(w, "  HTTP %s: %d\n", k, r.ByStatus[k])
	}
	for _, k := range keys(r.Errors) {
		fmt.Fprintf(w, "  error %q: %d\n", k, r.Errors[k])
	}
}
