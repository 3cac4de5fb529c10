package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
)

// tailOptions are the flags of `events tail`.
type tailOptions struct {
	member, event, since string
	count                int
	follow               time.Duration
}

func (a *app) eventsTailCmd() *cobra.Command {
	var o tailOptions
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "follow the live raw-event stream until Ctrl-C",
		Long: `tail follows B24_EVENTS with an ordered consumer (nothing is acknowledged or
created durably) and prints each event as it arrives. It runs until Ctrl-C,
--count events or --for; --timeout bounds only connecting.`,
		Example: "  b24ctl events tail --member-id a223c6b3710f85df22e9377d6c4f7553 --event ONCRMDEALUPDATE --since 10m",
		Args:    noArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&o.member, "member-id", "", "only this portal")
	fs.StringVar(&o.event, "event", "", "only this event code")
	fs.StringVar(&o.since, "since", "", "start this far back (e.g. 10m); default: only new events")
	fs.IntVar(&o.count, "count", 0, "stop after this many events (0: no limit)")
	fs.DurationVar(&o.follow, "for", 0, "stop after this long (0: until Ctrl-C)")
	nats := a.natsFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		return tail(ctx, cmd, nats, o, printerFor(*out, a.env.Stdout))
	})
	return cmd
}

// tailLine is one event in `events tail`.
type tailLine struct {
	Seq        uint64    `json:"stream_seq"`
	MessageID  string    `json:"message_id"`
	MemberID   string    `json:"member_id"`
	Event      string    `json:"event"`
	EntityID   string    `json:"entity_id,omitempty"`
	Source     string    `json:"source"`
	ReceivedAt time.Time `json:"received_at"`
	Body       string    `json:"body"`
}

// errConnClosed ends a tail whose NATS connection gave up reconnecting.
var errConnClosed = errors.New("NATS connection closed")

// tail follows the stream until ctx ends (Ctrl-C), --for passes or --count
// events were printed; all three are a normal end. Only connecting is
// bounded by --timeout: a quiet stream is not an error.
func tail(ctx context.Context, cmd *cobra.Command, o *natsOptions, t tailOptions, pr printer) error {
	m, e := "*", "*"
	if t.member != "" {
		m = t.member
	}
	if t.event != "" {
		e = t.event
	}
	if !eventbus.ValidToken(m) && m != "*" || !eventbus.ValidToken(e) && e != "*" {
		return usageErr("--member-id and --event must be plain subject tokens")
	}
	if t.count < 0 || t.follow < 0 {
		return usageErr("--count and --for must not be negative")
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventbus.EventsPrefix + "." + m + "." + e}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if t.since != "" {
		d, err := time.ParseDuration(t.since)
		if err != nil || d <= 0 {
			return usageErr("--since %q: want a duration like 10m", t.since)
		}
		start := time.Now().Add(-d)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	if t.follow > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.follow)
		defer cancel()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	nc, js, err := o.connect(cmd, nats.ClosedHandler(func(*nats.Conn) { cancel(errConnClosed) }))
	if err != nil {
		return err
	}
	defer nc.Close()
	setup, stop := context.WithTimeout(ctx, timeout(cmd))
	cons, err := js.OrderedConsumer(setup, eventbus.StreamEvents, cfg)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fail(ExitUnavailable, "stream %s: %v — run `b24ctl topology apply`", eventbus.StreamEvents, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fail(ExitError, "%v", err)
	}
	// The iterator blocks without a context: stop it when ours ends.
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for n := 0; t.count == 0 || n < t.count; n++ {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(context.Cause(ctx), errConnClosed) {
				return fail(ExitUnavailable, "lost NATS at %s", o.url)
			}
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil // Ctrl-C or --for: the way a tail ends
			}
			return fail(ExitError, "%v", err)
		}
		line := decodeTail(msg)
		text := fmt.Sprintf("%s  %-6d %-32s %-22s %-9s entity=%s id=%s", line.ReceivedAt.Format(time.RFC3339), line.Seq,
			line.MemberID, line.Event, line.Source, line.EntityID, line.MessageID)
		if err := pr.line(line, text); err != nil {
			return fail(ExitError, "write: %v", err)
		}
	}
	it.Stop()
	return nil
}

func decodeTail(msg jetstream.Msg) tailLine {
	line := tailLine{}
	if md, err := msg.Metadata(); err == nil {
		line.Seq = md.Sequence.Stream
	}
	env := &eventsv1.Envelope{}
	if err := proto.Unmarshal(msg.Data(), env); err != nil {
		line.Event, line.Body = "(undecodable)", err.Error()
		return line
	}
	return tailLine{Seq: line.Seq, MessageID: env.GetMessageId(), MemberID: env.GetMemberId(), Event: env.GetEvent(),
		EntityID: env.GetEntityId(), Source: sourceName(env.GetSource()), ReceivedAt: env.GetReceivedAt().AsTime(), Body: string(env.GetBody())}
}

// sourceName names an envelope's source, "unknown" for one without a name.
func sourceName(s eventsv1.Source) string {
	if n := eventbus.SourceName(s); n != "" {
		return n
	}
	return "unknown"
}
