package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
)

func init() {
	var consumer, portal, typ, status, source, entity, from, to string
	var limit int
	var force, yes bool
	register(&command{
		path:    "replay event",
		summary: "replay one event by id (optionally only at one consumer)",
		usage:   "EVENT_ID",
		example: "b24ctl replay event 5d41402abc4b2a76b9719d911017c592 --consumer deal-sync",
		flags: func(fs *flag.FlagSet, _ *opts) {
			fs.StringVar(&consumer, "consumer", "", "track the replay at this consumer (replays its dead letter)")
		},
		run: func(ctx context.Context, c *call) error {
			if len(c.args) != 1 {
				return usageErr("give exactly one event id")
			}
			return replay(ctx, c, map[string]any{"event_id": c.args[0], "consumer": consumer})
		},
	})
	register(&command{
		path:    "replay filter",
		summary: "replay every ledger event matching a filter (bounded by --limit)",
		example: "b24ctl replay filter --portal a223c6b3710f85df22e9377d6c4f7553 --type ONCRMDEALUPDATE --from 2h --limit 500 --yes",
		flags: func(fs *flag.FlagSet, _ *opts) {
			fs.StringVar(&portal, "portal", "", "member_id")
			fs.StringVar(&typ, "type", "", "event code")
			fs.StringVar(&status, "status", "", "ledger status, e.g. error or dead")
			fs.StringVar(&source, "source", "", "push, offline, reconcile or replay")
			fs.StringVar(&entity, "entity", "", "entity id")
			fs.StringVar(&consumer, "consumer", "", "consumer name")
			fs.StringVar(&from, "from", "", "RFC 3339 time or a duration back (required)")
			fs.StringVar(&to, "to", "", "RFC 3339 time or a duration back")
			fs.IntVar(&limit, "limit", 100, "at most this many events")
			fs.BoolVar(&yes, "yes", false, "confirm a bulk replay")
		},
		run: func(ctx context.Context, c *call) error {
			if from == "" {
				return usageErr("--from is required for a bulk replay (e.g. --from 1h)")
			}
			if !yes {
				return usageErr("a bulk replay re-sends events to consumers; add --yes to confirm (check the set first with `b24ctl events search` and the same filter)")
			}
			f, err := timeArg("from", from)
			if err != nil {
				return err
			}
			t, err := timeArg("to", to)
			if err != nil {
				return err
			}
			q := map[string]any{"portal": portal, "type": typ, "status": status, "source": source, "entity": entity, "consumer": consumer, "from": f}
			if t != "" {
				q["to"] = t
			}
			return replay(ctx, c, map[string]any{"events": q, "limit": limit})
		},
	})
	register(&command{
		path:    "replay dead-letters",
		summary: "replay dead letters (of one consumer, portal or event type)",
		example: "b24ctl replay dead-letters --consumer deal-sync --portal a223c6b3710f85df22e9377d6c4f7553 --yes",
		flags: func(fs *flag.FlagSet, _ *opts) {
			fs.StringVar(&consumer, "consumer", "", "consumer name")
			fs.StringVar(&portal, "portal", "", "member_id")
			fs.StringVar(&typ, "type", "", "event code")
			fs.IntVar(&limit, "limit", 100, "at most this many")
			fs.BoolVar(&force, "force", false, "also replay dead letters whose last replay is pending or done")
			fs.BoolVar(&yes, "yes", false, "confirm")
		},
		run: func(ctx context.Context, c *call) error {
			if !yes {
				return usageErr("add --yes to confirm (list them first with `b24ctl events search --status dead`)")
			}
			return replay(ctx, c, map[string]any{"dead_letters": map[string]any{"consumer": consumer, "portal": portal, "type": typ},
				"limit": limit, "force": force})
		},
	})
}

// replayResult mirrors the monitor's replay answer.
type replayResult struct {
	Replayed  []map[string]any  `json:"replayed"`
	Skipped   []string          `json:"skipped,omitempty"`
	Failed    map[string]string `json:"failed,omitempty"`
	Truncated bool              `json:"truncated"`
}

func replay(ctx context.Context, c *call, req map[string]any) error {
	var res replayResult
	if err := c.monitorDo(ctx, http.MethodPost, "/replay", nil, req, &res); err != nil {
		return err
	}
	c.emit(res, func(w io.Writer) {
		fmt.Fprintf(w, "replayed %d, skipped %d, failed %d\n", len(res.Replayed), len(res.Skipped), len(res.Failed))
		for id, e := range res.Failed {
			fmt.Fprintf(w, "  failed %s: %s\n", id, e)
		}
		if res.Truncated {
			fmt.Fprintln(w, "more events matched than --limit; run again to continue")
		}
	})
	if len(res.Failed) > 0 {
		return fail(ExitFindings, "replays failed")
	}
	return nil
}
