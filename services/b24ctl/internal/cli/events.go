package cli

import (
	"context"
	"fmt"
	"github.com/b24hub/b24hub/libs/eventbus"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) eventsCmd() *cobra.Command {
	return group("events", "follow live events; search and show the delivery ledger",
		a.eventsTailCmd(), a.eventsSearchCmd(), a.eventsShowCmd())
}

// Ledger statuses and event sources, for completion and checks.
var (
	ledgerStatuses = []string{"received", "pending", "done", "error", "dead", "skipped"}
	eventSources   = eventbus.SourceNames()
)

// eventFilter is the ledger filter shared by `events search` and
// `replay filter`.
type eventFilter struct {
	portal, typ, status, source, entity, consumer, from, to string
}

func (f *eventFilter) flags(cmd *cobra.Command, fromUsage string) {
	fs := cmd.Flags()
	fs.StringVar(&f.portal, "portal", "", "member_id")
	fs.StringVar(&f.typ, "type", "", "event code, e.g. ONCRMDEALUPDATE")
	fs.StringVar(&f.status, "status", "", "received, pending, done, error, dead or skipped")
	fs.StringVar(&f.source, "source", "", strings.Join(eventSources, ", "))
	fs.StringVar(&f.entity, "entity", "", "entity id")
	fs.StringVar(&f.consumer, "consumer", "", "consumer (durable) name")
	fs.StringVar(&f.from, "from", "", fromUsage)
	fs.StringVar(&f.to, "to", "", "RFC 3339 time or a duration back")
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(ledgerStatuses, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("source", cobra.FixedCompletions(eventSources, cobra.ShellCompDirectiveNoFileComp))
}

// query is the filter as the monitor's query parameters.
func (f eventFilter) query() (url.Values, error) {
	v := url.Values{}
	for _, kv := range [][2]string{{"portal", f.portal}, {"type", f.typ}, {"status", f.status}, {"source", f.source},
		{"entity", f.entity}, {"consumer", f.consumer}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	for _, kv := range [][2]string{{"from", f.from}, {"to", f.to}} {
		t, err := timeArg(kv[0], kv[1])
		if err != nil {
			return nil, err
		}
		if t != "" {
			v.Set(kv[0], t)
		}
	}
	return v, nil
}

// timeArg accepts RFC 3339 or a duration back from now.
func timeArg(name, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if _, err := time.Parse(time.RFC3339, v); err == nil {
		return v, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d).UTC().Format(time.RFC3339), nil
	}
	return "", usageErr("--%s %q: want an RFC 3339 time or a duration like 1h", name, v)
}

// eventPage is one page of GET /api/v1/events.
type eventPage struct {
	Events     []map[string]any `json:"events"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

func (a *app) eventsSearchCmd() *cobra.Command {
	var f eventFilter
	var limit int
	var cursor string
	cmd := &cobra.Command{
		Use:     "search",
		Short:   "search the delivery ledger (via the monitor)",
		Example: "  b24ctl events search --portal a223c6b3710f85df22e9377d6c4f7553 --type ONCRMDEALUPDATE --status dead --from 24h",
		Args:    noArgs,
	}
	f.flags(cmd, "RFC 3339 time or a duration back (e.g. 1h)")
	cmd.Flags().IntVar(&limit, "limit", 50, "page size (1..1000)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "next_cursor of the previous page")
	mon := a.monitorFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		v, err := f.query()
		if err != nil {
			return err
		}
		if limit < 1 || limit > 1000 {
			return usageErr("--limit must be 1..1000")
		}
		v.Set("limit", strconv.Itoa(limit))
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		m, err := a.monitor(cmd, mon)
		if err != nil {
			return err
		}
		var page eventPage
		if err := m.do(ctx, http.MethodGet, "/events", v, nil, &page); err != nil {
			return err
		}
		if page.Events == nil {
			page.Events = []map[string]any{}
		}
		return printerFor(*out, a.env.Stdout).print(page, func(w io.Writer) {
			var rows [][]string
			for _, e := range page.Events {
				rows = append(rows, []string{str(e, "received_at"), str(e, "id"), str(e, "portal"), str(e, "event_type"),
					str(e, "entity_id"), str(e, "source"), str(e, "status")})
			}
			table(w, []string{"RECEIVED", "ID", "PORTAL", "EVENT", "ENTITY", "SOURCE", "STATUS"}, rows)
			if page.NextCursor != "" {
				fmt.Fprintf(w, "more: --cursor %s\n", page.NextCursor)
			}
		})
	})
	return cmd
}

func (a *app) eventsShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "show EVENT_ID",
		Short:   "show one event with its deliveries, replays and trace id",
		Example: "  b24ctl events show 5d41402abc4b2a76b9719d911017c592\n  b24ctl events show 5d41402abc4b2a76b9719d911017c592 -o json",
		Args:    exactArgs(1, "one event id"),
	}
	mon := a.monitorFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		m, err := a.monitor(cmd, mon)
		if err != nil {
			return err
		}
		var d map[string]any
		if err := m.do(ctx, http.MethodGet, "/events/"+url.PathEscape(args[0]), nil, nil, &d); err != nil {
			return err
		}
		return printerFor(*out, a.env.Stdout).print(d, func(w io.Writer) { printEvent(w, d) })
	})
	return cmd
}

// printEvent is the human view of GET /api/v1/events/:id.
func printEvent(w io.Writer, d map[string]any) {
	e, _ := d["event"].(map[string]any)
	for _, k := range []string{"id", "portal", "domain", "event_type", "entity_id", "source", "replay_of", "received_at", "status"} {
		if v := str(e, k); v != "" {
			fmt.Fprintf(w, "%-12s %s\n", k+":", v)
		}
	}
	if t := str(d, "trace_id"); t != "" {
		fmt.Fprintf(w, "%-12s %s %s\n", "trace:", t, str(d, "trace_url"))
	}
	var rows [][]string
	ds, _ := d["deliveries"].([]any)
	for _, x := range ds {
		if m, ok := x.(map[string]any); ok {
			rows = append(rows, []string{str(m, "consumer"), str(m, "status"), str(m, "attempts"), str(m, "last_attempt_at"), or(str(m, "dead_reason"), str(m, "last_error"))})
		}
	}
	fmt.Fprintln(w, "\ndeliveries:")
	table(w, []string{"CONSUMER", "STATUS", "ATTEMPTS", "LAST ATTEMPT", "ERROR"}, rows)
	rows = nil
	rs, _ := d["replays"].([]any)
	for _, x := range rs {
		if m, ok := x.(map[string]any); ok {
			rows = append(rows, []string{str(m, "id"), str(m, "consumer"), str(m, "requested_at"), str(m, "status")})
		}
	}
	if len(rows) > 0 {
		fmt.Fprintln(w, "\nreplays:")
		table(w, []string{"REPLAY", "CONSUMER", "REQUESTED", "STATUS"}, rows)
	}
	if p := str(d, "payload"); p != "" {
		fmt.Fprintf(w, "\npayload:\n%s\n", p)
	}
}
