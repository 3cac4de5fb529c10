package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/b24ctl/internal/loadgen"
	"gopkg.in/yaml.v3"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func init() {
	var (
		ingressURL, portalsFile, events string
		portalArgs, members             multiFlag
		rate                            float64
		duration                        time.Duration
		requests, concurrency           int
		allowRemote                     bool
	)
	register(&command{
		path:    "simulate",
		summary: "post realistic events to an ingress at a rate for a time; report latency percentiles and errors",
		example: "b24ctl simulate --ingress-url http://127.0.0.1:8080 --portals-file .data/portals.yaml --events ONCRMDEALUPDATE,ONTASKUPDATE --rate 200 --duration 30s",
		flags: func(fs *flag.FlagSet, o *opts) {
			// fs.Var keeps what the variable holds: start every call empty.
			portalArgs, members = nil, nil
			fs.StringVar(&ingressURL, "ingress-url", "http://127.0.0.1:8080", "ingress base URL (loopback only unless --allow-remote)")
			fs.StringVar(&portalsFile, "portals-file", "", "take portals and their tokens from this portals file (env B24HUB_PORTALS_FILE)")
			fs.Var(&members, "member-id", "with --portals-file: only this portal (repeatable)")
			fs.Var(&portalArgs, "portal", "MEMBER_ID:APPLICATION_TOKEN of a portal to simulate (repeatable)")
			fs.StringVar(&events, "events", "ONCRMDEALUPDATE", "comma-separated event codes")
			fs.Float64Var(&rate, "rate", 50, fmt.Sprintf("requests per second (at most %d)", loadgen.MaxRate))
			fs.DurationVar(&duration, "duration", 10*time.Second, fmt.Sprintf("how long to send (at most %s)", loadgen.MaxDuration))
			fs.IntVar(&requests, "requests", 0, "stop after this many requests (0: rate × duration)")
			fs.IntVar(&concurrency, "concurrency", 64, "requests in flight at most")
			fs.BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback ingress URL")
		},
		run: func(ctx context.Context, c *call) error {
			ps, err := simPortals(c, or(portalsFile, c.env.Getenv("B24HUB_PORTALS_FILE")), members, portalArgs)
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
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < duration {
				// Give the run its time even when --timeout was left at the default.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), duration+15*time.Second)
				defer cancel()
			}
			bar := c.progress("simulate", int64(cfg.Planned()))
			cfg.Progress = func(done, planned int64) { bar.set(done, fmt.Sprintf("%d/%d", done, planned)) }
			rep, err := loadgen.Run(ctx, cfg)
			bar.done()
			if err != nil {
				return fail(ExitError, "%v", err)
			}
			c.emit(rep, func(w io.Writer) { printReport(w, rep) })
			switch {
			case rep.Requests > 0 && rep.OK == 0 && len(rep.Errors) > 0:
				return fail(ExitUnavailable, "no request reached the ingress at %s (%v) — start the local stack or fix --ingress-url", ingressURL, keys(rep.Errors))
			case rep.Failed > 0:
				return fail(ExitFindings, "failed requests")
			}
			return nil
		},
	})
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
func simPortals(c *call, file string, members, args []string) ([]loadgen.Portal, error) {
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
	fmt.Fprintf(w, "latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max)
	for _, k := range keys(r.ByStatus) {
		fmt.Fprintf(w, "  HTTP %s: %d\n", k, r.ByStatus[k])
	}
	for _, k := range keys(r.Errors) {
		fmt.Fprintf(w, "  error %q: %d\n", k, r.Errors[k])
	}
}
