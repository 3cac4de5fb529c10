package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

func init() {
	var member, event, since string
	var count int
	var follow time.Duration
	register(&command{
		path:    "events tail",
		summary: "follow the live raw-event stream (redacted bodies)",
		example: "b24ctl events tail --member-id a223c6b3710f85df22e9377d6c4f7553 --event ONCRMDEALUPDATE --since 10m",
		flags: func(fs *flag.FlagSet, o *opts) {
			fs.StringVar(&member, "member-id", "", "only this portal")
			fs.StringVar(&event, "event", "", "only this event code")
			fs.StringVar(&since, "since", "", "start this far back (e.g. 10m); default: only new events")
			fs.IntVar(&count, "count", 0, "stop after this many events (0: no limit)")
			fs.DurationVar(&follow, "for", 0, "stop after this long (0: until --timeout or Ctrl-C)")
		},
		run: func(ctx context.Context, c *call) error { return tail(ctx, c, member, event, since, count, follow) },
	})
	var q eventQuery
	register(&command{
		path:    "events search",
		summary: "search the delivery ledger (via the monitor)",
		example: "b24ctl events search --portal a223c6b3710f85df22e9377d6c4f7553 --type ONCRMDEALUPDATE --status dead --from 2026-09-17T00:00:00Z",
		flags: func(fs *flag.FlagSet, _ *opts) {
			fs.StringVar(&q.portal, "portal", "", "member_id")
			fs.StringVar(&q.typ, "type", "", "event code")
			fs.StringVar(&q.status, "status", "", "received, pending, done, error, dead or skipped")
			fs.StringVar(&q.source, "source", "", "push, offline, reconcile or replay")
			fs.StringVar(&q.entity, "entity", "", "entity id")
			fs.StringVar(&q.consumer, "consumer", "", "consumer (durable) name")
			fs.StringVar(&q.from, "from", "", "RFC 3339 time or a duration back (e.g. 1h)")
			fs.StringVar(&q.to, "to", "", "RFC 3339 time or a duration back")
			fs.IntVar(&q.limit, "limit", 50, "page size (1..1000)")
			fs.StringVar(&q.cursor, "cursor", "", "next_cursor of the previous page")
		},
		run: func(ctx context.Context, c *call) error { return search(ctx, c, q) },
	})
	register(&command{
		path:    "events show",
		summary: "show one event with its deliveries, replays and trace id",
		usage:   "EVENT_ID",
		example: "b24ctl events show 5d41402abc4b2a76b9719d911017c592",
		run: func(ctx context.Context, c *call) error {
			if len(c.args) != 1 {
				return usageErr("give exactly one event id")
			}
			var d map[string]any
			if err := c.monitorDo(ctx, http.MethodGet, "/events/"+url.PathEscape(c.args[0]), nil, nil, &d); err != nil {
				return err
			}
			c.emit(d, func(w io.Writer) { writeJSON(w, d) })
			return nil
		},
	})
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

func tail(ctx context.Context, c *call, member, event, since string, count int, follow time.Duration) error {
	m, e := "*", "*"
	if member != "" {
		m = member
	}
	if event != "" {
		e = event
	}
	if !eventbus.ValidToken(m) && m != "*" || !eventbus.ValidToken(e) && e != "*" {
		return usageErr("--member-id and --event must be plain subject tokens")
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventbus.EventsPrefix + "." + m + "." + e}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if since != "" {
		d, err := time.ParseDuration(since)
		if err != nil || d <= 0 {
			return usageErr("--since %q: want a duration like 10m", since)
		}
		t := time.Now().Add(-d)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if follow > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, follow)
		defer cancel()
	}
	nc, js, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	cons, err := js.OrderedConsumer(ctx, eventbus.StreamEvents, cfg)
	if err != nil {
		return fail(ExitUnavailable, "stream %s: %v — run `b24ctl topology apply`", eventbus.StreamEvents, err)
	}
	n := 0
	for count == 0 || n < count {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
				return nil // --for or --timeout ended the tail: not an error
			}
			return fail(ExitError, "%v", err)
		}
		env := &eventsv1.Envelope{}
		line := tailLine{}
		if md, err := msg.Metadata(); err == nil {
			line.Seq = md.Sequence.Stream
		}
		if err := proto.Unmarshal(msg.Data(), env); err != nil {
			line.Event, line.Body = "(undecodable)", err.Error()
		} else {
			line = tailLine{Seq: line.Seq, MessageID: env.GetMessageId(), MemberID: env.GetMemberId(), Event: env.GetEvent(),
				EntityID: env.GetEntityId(), Source: sourceName(env.GetSource()), ReceivedAt: env.GetReceivedAt().AsTime(), Body: string(env.GetBody())}
		}
		if c.json() {
			writeJSONLine(c.out(), line)
		} else {
			fmt.Fprintf(c.out(), "%s  %-6d %-32s %-22s %-9s entity=%s id=%s\n", line.ReceivedAt.Format(time.RFC3339), line.Seq,
				line.MemberID, line.Event, line.Source, line.EntityID, line.MessageID)
		}
		n++
	}
	return nil
}

func sourceName(s eventsv1.Source) string {
	switch s {
	case eventsv1.Source_SOURCE_PUSH:
		return eventbus.SourcePush
	case eventsv1.Source_SOURCE_OFFLINE:
		return eventbus.SourceOffline
	case eventsv1.Source_SOURCE_RECONCILE:
		return eventbus.SourceReconcile
	case eventsv1.Source_SOURCE_REPLAY:
		return eventbus.SourceReplay
	}
	return "unknown"
}

type eventQuery struct {
	portal, typ, status, source, entity, consumer, from, to, cursor string
	limit                                                           int
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

func search(ctx context.Context, c *call, q eventQuery) error {
	v := url.Values{}
	for k, x := range map[string]string{"portal": q.portal, "type": q.typ, "status": q.status, "source": q.source,
		"entity": q.entity, "consumer": q.consumer, "cursor": q.cursor} {
		if x != "" {
			v.Set(k, x)
		}
	}
	for name, x := range map[string]string{"from": q.from, "to": q.to} {
		t, err := timeArg(name, x)
		if err != nil {
			return err
		}
		if t != "" {
			v.Set(name, t)
		}
	}
	if q.limit < 1 || q.limit > 1000 {
		return usageErr("--limit must be 1..1000")
	}
	v.Set("limit", strconv.Itoa(q.limit))
	var page struct {
		Events     []map[string]any `json:"events"`
		NextCursor string           `json:"next_cursor,omitempty"`
	}
	if err := c.monitorDo(ctx, http.MethodGet, "/events", v, nil, &page); err != nil {
		return err
	}
	if page.Events == nil {
		page.Events = []map[string]any{}
	}
	c.emit(page, func(w io.Writer) {
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
	return nil
}
