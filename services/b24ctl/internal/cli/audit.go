package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// auditReport is the body of GET /api/v1/audit (the monitor's audit.Report).
type auditReport struct {
	From           time.Time       `json:"from"`
	To             time.Time       `json:"to"`
	StreamFirstSeq uint64          `json:"stream_first_seq"`
	StreamLastSeq  uint64          `json:"stream_last_seq"`
	StreamMessages int             `json:"stream_messages"`
	LedgerEvents   int             `json:"ledger_events"`
	Consumers      []auditConsumer `json:"consumers"`
	InFlight       int             `json:"in_flight"`
	Findings       []auditFinding  `json:"findings"`
	OK             bool            `json:"ok"`
}

// auditConsumer is one durable consumer of the raw stream as audited.
type auditConsumer struct {
	Name           string   `json:"name"`
	FilterSubjects []string `json:"filter_subjects"`
	DeliveredSeq   uint64   `json:"delivered_seq"`
	AckFloorSeq    uint64   `json:"ack_floor_seq"`
	NumPending     uint64   `json:"num_pending"`
	NumAckPending  int      `json:"num_ack_pending"`
}

// auditFinding is one unfinished event (or stream gap) with its reason.
type auditFinding struct {
	EventID    string    `json:"event_id,omitempty"`
	StreamSeq  uint64    `json:"stream_seq,omitempty"`
	Portal     string    `json:"portal,omitempty"`
	EventType  string    `json:"event_type,omitempty"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	Consumer   string    `json:"consumer,omitempty"`
	Reason     string    `json:"reason"`
	Detail     string    `json:"detail"`
}

func (a *app) auditCmd() *cobra.Command {
	var from, to string
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "prove nothing was lost: cross-check the raw stream, the ledger and every consumer's ack floor (via the monitor)",
		Long: `audit asks the monitor to cross-check, for events received in the window,
the raw stream B24_EVENTS (its sequences), the delivery ledger and each
durable consumer's ack floor, and lists every accepted event that is not
done, skipped or dead-lettered at a consumer that should have seen it, with
the reason: missing_from_ledger, stream_gap, never_delivered,
ack_floor_behind, outcome_missing, pending or retrying. Events younger than
--grace are in flight, not findings.

Exit 0 when nothing is missing, 4 when something is.`,
		Example: "  b24ctl audit --from 24h\n  b24ctl audit --from 2026-09-17T00:00:00Z --to 2026-09-18T00:00:00Z -o json",
		Args:    noArgs,
	}
	cmd.Flags().StringVar(&from, "from", "24h", "start of the window: RFC 3339 time or a duration back")
	cmd.Flags().StringVar(&to, "to", "", "end of the window: RFC 3339 time or a duration back (default now)")
	cmd.Flags().DurationVar(&grace, "grace", 5*time.Minute, "how long an unfinished event is in flight before it is a finding")
	mon := a.monitorFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		v := url.Values{}
		for _, kv := range [][2]string{{"from", from}, {"to", to}} {
			t, err := timeArg(kv[0], kv[1])
			if err != nil {
				return err
			}
			if t != "" {
				v.Set(kv[0], t)
			}
		}
		if grace <= 0 {
			return usageErr("--grace must be positive")
		}
		v.Set("grace", grace.String())
		m, err := a.monitor(cmd, mon)
		if err != nil {
			return err
		}
		var rep auditReport
		if err := m.do(ctx, http.MethodGet, "/audit", v, nil, &rep); err != nil {
			return err
		}
		if rep.Findings == nil {
			rep.Findings = []auditFinding{}
		}
		if err := printerFor(*out, a.env.Stdout).print(rep, func(w io.Writer) { printAudit(w, rep) }); err != nil {
			return err
		}
		if !rep.OK {
			return fail(ExitFindings, "%d events not finished", len(rep.Findings))
		}
		return nil
	})
	return cmd
}

func printAudit(w io.Writer, rep auditReport) {
	fmt.Fprintf(w, "window %s .. %s: %d in the stream (sequences %d..%d), %d in the ledger, %d in flight\n\n",
		rep.From.UTC().Format(time.RFC3339), rep.To.UTC().Format(time.RFC3339), rep.StreamMessages,
		rep.StreamFirstSeq, rep.StreamLastSeq, rep.LedgerEvents, rep.InFlight)
	var rows [][]string
	for _, c := range rep.Consumers {
		rows = append(rows, []string{c.Name, strconv.FormatUint(c.AckFloorSeq, 10), strconv.FormatUint(c.DeliveredSeq, 10),
			strconv.FormatUint(c.NumPending, 10), strconv.Itoa(c.NumAckPending)})
	}
	table(w, []string{"CONSUMER", "ACK FLOOR", "DELIVERED", "PENDING", "ACK PENDING"}, rows)
	fmt.Fprintln(w)
	if rep.OK {
		fmt.Fprintln(w, "nothing missing: every accepted event is done, skipped or dead-lettered at every consumer that should see it")
		return
	}
	rows = rows[:0]
	for _, f := range rep.Findings {
		seq := ""
		if f.StreamSeq != 0 {
			seq = strconv.FormatUint(f.StreamSeq, 10)
		}
		rows = append(rows, []string{seq, f.EventID, f.Portal, f.EventType, f.Consumer, f.Reason, f.Detail})
	}
	table(w, []string{"SEQ", "EVENT", "PORTAL", "TYPE", "CONSUMER", "REASON", "DETAIL"}, rows)
}
