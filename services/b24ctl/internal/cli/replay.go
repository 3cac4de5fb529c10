package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/spf13/cobra"
)

func (a *app) replayCmd() *cobra.Command {
	return group("replay", "replay events to the consumers: one, by filter, or dead letters",
		a.replayEventCmd(), a.replayFilterCmd(), a.replayDeadLettersCmd())
}

// replayTarget is one event replay: the request {"event_id", "consumer"}
// replays it alone.
type replayTarget struct {
	EventID  string `json:"event_id"`
	Consumer string `json:"consumer,omitempty"`
}

// replayPlan is the monitor's answer to a dry run (its replay.Plan): what
// the same request would replay. b24ctl prints it for --dry-run and runs
// it otherwise, so the count an operator confirms is the set that runs.
type replayPlan struct {
	DryRun      bool           `json:"dry_run"`
	WouldReplay int            `json:"would_replay"`
	EventIDs    []string       `json:"event_ids"`
	Targets     []replayTarget `json:"targets"`
	// Skipped are dead letters left alone because a replay of them is
	// already pending or done (unless --force).
	Skipped []string `json:"skipped,omitempty"`
	// Truncated is true when more matched than Limit.
	Truncated bool `json:"truncated"`
	// Limit is the effective limit: --limit capped by the monitor's
	// B24HUB_MONITOR_REPLAY_MAX.
	Limit int `json:"limit"`
}

// plan asks the monitor what req would replay, publishing nothing.
func plan(ctx context.Context, m *monitorClient, req map[string]any) (replayPlan, error) {
	req["dry_run"] = true
	var p replayPlan
	if err := m.do(ctx, http.MethodPost, "/replay", nil, req, &p); err != nil {
		return p, err
	}
	if !p.DryRun || len(p.Targets) != p.WouldReplay {
		return p, fail(ExitError, "the monitor at %s answered the dry run without its targets; it is older than this b24ctl", m.shown)
	}
	return p, nil
}

// replayResult is the outcome of a replay; it has the fields of the
// monitor's answer to POST /api/v1/replay.
type replayResult struct {
	Replayed  []map[string]any  `json:"replayed"`
	Skipped   []string          `json:"skipped,omitempty"`
	Failed    map[string]string `json:"failed,omitempty"`
	Truncated bool              `json:"truncated"`
	// Interrupted is true when Ctrl-C stopped the replay part way.
	Interrupted bool `json:"interrupted,omitempty"`
}

func (a *app) replayEventCmd() *cobra.Command {
	var consumer string
	var dryRun bool
	cmd := &cobra.Command{
		Use:     "event EVENT_ID",
		Short:   "replay one event by id (optionally only at one consumer)",
		Example: "  b24ctl replay event 5d41402abc4b2a76b9719d911017c592 --consumer deal-sync",
		Args:    exactArgs(1, "one event id"),
	}
	cmd.Flags().StringVar(&consumer, "consumer", "", "track the replay at this consumer (replays its dead letter)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check that the event can be replayed; send nothing")
	mon := a.monitorFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		m, err := a.monitor(cmd, mon)
		if err != nil {
			return err
		}
		pr := printerFor(*out, a.env.Stdout)
		if dryRun {
			p, err := plan(ctx, m, map[string]any{"event_id": args[0], "consumer": consumer})
			if err != nil {
				return err
			}
			return printPlan(pr, p, 1)
		}
		return a.replayAll(ctx, m, pr, replayPlan{WouldReplay: 1, Targets: []replayTarget{{EventID: args[0], Consumer: consumer}}})
	})
	return cmd
}

func (a *app) replayFilterCmd() *cobra.Command {
	var f eventFilter
	var limit int
	var yes, dryRun bool
	cmd := &cobra.Command{
		Use:   "filter",
		Short: "replay every ledger event matching a filter (bounded by --limit)",
		Long: `filter replays every ledger event matching the filter, at most --limit, newest
first. --dry-run prints how many events match and sends nothing; without it
--yes is required. Events are replayed one by one, with a progress bar on a
terminal, and Ctrl-C stops between two of them.`,
		Example: "  b24ctl replay filter --portal a223c6b3710f85df22e9377d6c4f7553 --type ONCRMDEALUPDATE --from 2h --dry-run\n" +
			"  b24ctl replay filter --portal a223c6b3710f85df22e9377d6c4f7553 --type ONCRMDEALUPDATE --from 2h --limit 500 --yes",
		Args: noArgs,
	}
	f.flags(cmd, "RFC 3339 time or a duration back (required)")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many events (the monitor caps it at its B24HUB_MONITOR_REPLAY_MAX)")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm a bulk replay")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print how many events match; send nothing")
	mon := a.monitorFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if f.from == "" {
			return usageErr("--from is required for a bulk replay (e.g. --from 1h)")
		}
		if limit < 1 {
			return usageErr("--limit must be at least 1")
		}
		if !yes && !dryRun {
			return usageErr("a bulk replay re-sends events to consumers: see how many match with --dry-run, then add --yes to confirm")
		}
		q, err := f.query()
		if err != nil {
			return err
		}
		filter := map[string]any{}
		for k := range q {
			filter[k] = q.Get(k)
		}
		m, err := a.monitor(cmd, mon)
		if err != nil {
			return err
		}
		p, err := plan(ctx, m, map[string]any{"events": filter, "limit": limit})
		if err != nil {
			return err
		}
		pr := printerFor(*out, a.env.Stdout)
		if dryRun {
			return printPlan(pr, p, limit)
		}
		return a.replayAll(ctx, m, pr, p)
	})
	return cmd
}

func (a *app) replayDeadLettersCmd() *cobra.Command {
	var consumer, portal, typ, from, to string
	var limit int
	var force, yes, dryRun bool
	cmd := &cobra.Command{
		Use:   "dead-letters",
		Short: "replay dead letters (of one consumer, portal or event type)",
		Long: `dead-letters replays the dead letters matching the filter, at most --limit,
each tracked at its consumer. Dead letters whose newest replay is pending or
done are skipped unless --force. --dry-run prints how many would be replayed
and sends nothing; without it --yes is required.`,
		Example: "  b24ctl replay dead-letters --consumer deal-sync --portal a223c6b3710f85df22e9377d6c4f7553 --dry-run\n" +
			"  b24ctl replay dead-letters --consumer deal-sync --portal a223c6b3710f85df22e9377d6c4f7553 --yes",
		Args: noArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&consumer, "consumer", "", "consumer name")
	fs.StringVar(&portal, "portal", "", "member_id")
	fs.StringVar(&typ, "type", "", "event code")
	fs.StringVar(&from, "from", "", "dead since: RFC 3339 time or a duration back")
	fs.StringVar(&to, "to", "", "dead until: RFC 3339 time or a duration back")
	fs.IntVar(&limit, "limit", 100, "at most this many (the monitor caps it at its B24HUB_MONITOR_REPLAY_MAX)")
	fs.BoolVar(&force, "force", false, "also replay dead letters whose last replay is pending or done")
	fs.BoolVar(&yes, "yes", false, "confirm")
	fs.BoolVar(&dryRun, "dry-run", false, "print how many would be replayed; send nothing")
	mon := a.monitorFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if limit < 1 {
			return usageErr("--limit must be at least 1")
		}
		if !yes && !dryRun {
			return usageErr("a replay re-sends events to consumers: see how many with --dry-run (or `b24ctl events search --status dead`), then add --yes to confirm")
		}
		q, err := eventFilter{portal: portal, typ: typ, consumer: consumer, from: from, to: to}.query()
		if err != nil {
			return err
		}
		m, err := a.monitor(cmd, mon)
		if err != nil {
			return err
		}
		filter := map[string]any{}
		for k := range q {
			filter[k] = q.Get(k)
		}
		p, err := plan(ctx, m, map[string]any{"dead_letters": filter, "limit": limit, "force": force})
		if err != nil {
			return err
		}
		pr := printerFor(*out, a.env.Stdout)
		if dryRun {
			return printPlan(pr, p, limit)
		}
		return a.replayAll(ctx, m, pr, p)
	})
	return cmd
}

// printPlan prints a dry run; limit is what the operator asked for.
func printPlan(pr printer, p replayPlan, limit int) error {
	return pr.print(p, func(w io.Writer) {
		fmt.Fprintf(w, "would replay %d event(s)", p.WouldReplay)
		if len(p.Skipped) > 0 {
			fmt.Fprintf(w, ", skip %d already replayed (--force includes them)", len(p.Skipped))
		}
		fmt.Fprintln(w)
		switch {
		case p.Truncated && p.Limit < limit:
			fmt.Fprintf(w, "more matched than the monitor replays at once (%d, its B24HUB_MONITOR_REPLAY_MAX); narrow the filter\n", p.Limit)
		case p.Truncated:
			fmt.Fprintln(w, "more matched than --limit")
		}
	})
}

// replayAll asks the monitor to replay each target in turn, drawing
// progress, and stops between two requests on Ctrl-C. A refusal of one
// event (unknown, not replayable) is recorded and the rest go on; losing
// the monitor or its trust stops the run.
func (a *app) replayAll(ctx context.Context, m *monitorClient, pr printer, p replayPlan) error {
	res := replayResult{Replayed: []map[string]any{}, Skipped: p.Skipped, Failed: map[string]string{}, Truncated: p.Truncated}
	total := len(p.Targets)
	bar := a.progress("replay", int64(total))
	var stop error
	for i, t := range p.Targets {
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
		var one replayResult
		err := m.do(ctx, http.MethodPost, "/replay", nil, map[string]any{"event_id": t.EventID, "consumer": t.Consumer}, &one)
		var ee *exitError
		switch {
		case err == nil:
			res.Replayed = append(res.Replayed, one.Replayed...)
			for id, e := range one.Failed {
				res.Failed[id] = e
			}
		case ctx.Err() != nil:
			res.Interrupted = true
		case errors.As(err, &ee) && ee.code == ExitError:
			res.Failed[t.EventID] = err.Error()
		default:
			stop = err
		}
		if res.Interrupted || stop != nil {
			break
		}
		bar.set(int64(i+1), fmt.Sprintf("%d/%d", i+1, total))
	}
	bar.done()
	if err := pr.print(res, func(w io.Writer) {
		fmt.Fprintf(w, "replayed %d, skipped %d, failed %d", len(res.Replayed), len(res.Skipped), len(res.Failed))
		if res.Interrupted || stop != nil {
			fmt.Fprintf(w, " of %d (stopped)", total)
		}
		fmt.Fprintln(w)
		for id, e := range res.Failed {
			fmt.Fprintf(w, "  failed %s: %s\n", id, e)
		}
		if res.Truncated {
			fmt.Fprintln(w, "more events matched than --limit; run again to continue")
		}
	}); err != nil {
		return err
	}
	done := len(res.Replayed) + len(res.Failed)
	switch {
	case res.Interrupted:
		return failShown(ExitInterrupted, "interrupted after %d of %d replay requests; the rest were not sent", done, total)
	case stop != nil:
		code := ExitError
		var ee *exitError
		if errors.As(stop, &ee) {
			code = ee.code
		}
		return failShown(code, "stopped after %d of %d replay requests: %v", done, total, stop)
	case len(res.Failed) > 0:
		return fail(ExitFindings, "replays failed")
	}
	return nil
}
