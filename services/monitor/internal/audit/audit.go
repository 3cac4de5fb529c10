// Package audit proves that nothing accepted was lost: it cross-checks the
// raw event stream's sequences, the delivery ledger and every durable
// consumer's ack floor, and lists each accepted event that is not done,
// skipped or dead-lettered at every consumer that should have seen it,
// with the reason. An empty list is the operator's proof.
package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reasons a finding names.
const (
	// ReasonMissingFromLedger: the message is in the stream but the ledger
	// never recorded the event (the monitor's ingest missed it).
	ReasonMissingFromLedger = "missing_from_ledger"
	// ReasonStreamGap: stream sequences inside the window are gone (deleted
	// or purged) before the audit could see them.
	ReasonStreamGap = "stream_gap"
	// ReasonNeverDelivered: the consumer has not been handed the event yet,
	// and it is older than the grace period.
	ReasonNeverDelivered = "never_delivered"
	// ReasonAckFloorBehind: the consumer was handed the event but has not
	// acknowledged it within the grace period.
	ReasonAckFloorBehind = "ack_floor_behind"
	// ReasonOutcomeMissing: the consumer acknowledged the event but no
	// outcome of it reached the ledger.
	ReasonOutcomeMissing = "outcome_missing"
	// ReasonPending: the delivery is expected (a replay in flight) for
	// longer than the grace period.
	ReasonPending = "pending"
	// ReasonRetrying: the last attempt failed and the consumer will retry.
	ReasonRetrying = "retrying"
)

// DefaultGrace is how long an event may be in flight before the audit
// calls it late.
const DefaultGrace = 5 * time.Minute

// DefaultLimit bounds the events one audit judges.
const DefaultLimit = 200000

// Finding is one accepted event (or stream range) that is not finished.
type Finding struct {
	EventID    string    `json:"event_id,omitempty"`
	StreamSeq  uint64    `json:"stream_seq,omitempty"`
	Portal     string    `json:"portal,omitempty"`
	EventType  string    `json:"event_type,omitempty"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// Consumer is the durable the event is unfinished at; empty for
	// findings about the stream or the ledger itself.
	Consumer string `json:"consumer,omitempty"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail"`
}

// ConsumerState is one durable consumer of the raw stream as the audit saw it.
type ConsumerState struct {
	Name           string    `json:"name"`
	FilterSubjects []string  `json:"filter_subjects"`
	Created        time.Time `json:"created"`
	DeliveredSeq   uint64    `json:"delivered_seq"`
	AckFloorSeq    uint64    `json:"ack_floor_seq"`
	NumPending     uint64    `json:"num_pending"`
	NumAckPending  int       `json:"num_ack_pending"`
}

// Report is the result of one audit.
type Report struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Stream's first and last sequence when the audit ran.
	StreamFirstSeq uint64 `json:"stream_first_seq"`
	StreamLastSeq  uint64 `json:"stream_last_seq"`
	// StreamMessages were in the stream inside the window.
	StreamMessages int `json:"stream_messages"`
	// LedgerEvents were recorded in the ledger inside the window.
	LedgerEvents int             `json:"ledger_events"`
	Consumers    []ConsumerState `json:"consumers"`
	// InFlight counts deliveries younger than the grace period that are
	// not finished yet (not findings).
	InFlight int       `json:"in_flight"`
	Findings []Finding `json:"findings"`
	// OK is true when nothing is missing.
	OK bool `json:"ok"`
}

// Ledger is the part of the ledger the audit reads.
type Ledger interface {
	AuditEvents(ctx context.Context, from, to time.Time, limit int) ([]ledger.AuditEvent, error)
	RecordedIDs(ctx context.Context, ids []string) (map[string]bool, error)
	OldestUnfinished(ctx context.Context) (map[string]time.Time, error)
}

var _ Ledger = (*ledger.Store)(nil)

// Auditor runs audits.
type Auditor struct {
	js     jetstream.JetStream
	ledger Ledger
	// self is the monitor's own durable on the raw stream: its progress is
	// judged by the ledger itself, not as a consumer of events.
	self string
	now  func() time.Time
}

// Config wires an Auditor. JS and Ledger are required; Self (the
// monitor's own ledger durable, default none) is excluded from the
// consumers events must reach; Now defaults to time.Now.
type Config struct {
	JS     jetstream.JetStream
	Ledger Ledger
	Self   string
	Now    func() time.Time
}

// New returns an Auditor.
func New(cfg Config) *Auditor {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Auditor{js: cfg.JS, ledger: cfg.Ledger, self: cfg.Self, now: cfg.Now}
}

// Options narrow one audit.
type Options struct {
	// From and To bound the window by receive time; To defaults to now and
	// From to To minus 24 hours.
	From, To time.Time
	// Grace is how long an unfinished event is in flight, not late.
	// Default DefaultGrace.
	Grace time.Duration
	// Limit bounds the events judged; default DefaultLimit.
	Limit int
}

// Run audits the window. It fails (rather than reporting a partial
// answer) when the stream, a consumer or the ledger cannot be read.
func (a *Auditor) Run(ctx context.Context, o Options) (Report, error) {
	now := a.now()
	if o.To.IsZero() {
		o.To = now
	}
	if o.From.IsZero() {
		o.From = o.To.Add(-24 * time.Hour)
	}
	if !o.From.Before(o.To) {
		return Report{}, fmt.Errorf("audit: from %s is not before to %s", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Limit <= 0 {
		o.Limit = DefaultLimit
	}
	rep := Report{From: o.From, To: o.To, Findings: []Finding{}}
	stream, err := a.js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		return Report{}, fmt.Errorf("audit: stream %s: %w", eventbus.StreamEvents, err)
	}
	// Consumers first: an event published after this point is newer than
	// anything the floors describe and is left to the next audit.
	if rep.Consumers, err = a.consumers(ctx, stream); err != nil {
		return Report{}, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("audit: stream %s: %w", eventbus.StreamEvents, err)
	}
	rep.StreamFirstSeq, rep.StreamLastSeq = info.State.FirstSeq, info.State.LastSeq

	msgs, gaps, err := a.scan(ctx, stream, o, info.State.LastSeq)
	if err != nil {
		return Report{}, err
	}
	rep.StreamMessages = len(msgs)
	rep.Findings = append(rep.Findings, gaps...)
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.id
	}
	recorded, err := a.ledger.RecordedIDs(ctx, ids)
	if err != nil {
		return Report{}, err
	}
	for _, m := range msgs {
		if !recorded[m.id] {
			portal, ev, _ := eventbus.ParseRawEvent(m.subject)
			rep.Findings = append(rep.Findings, Finding{EventID: m.id, StreamSeq: m.seq, Portal: portal, EventType: ev,
				ReceivedAt: m.at, Reason: ReasonMissingFromLedger,
				Detail: fmt.Sprintf("stream sequence %d (%s) was never recorded in the ledger", m.seq, m.subject)})
		}
	}

	events, err := a.ledger.AuditEvents(ctx, o.From, o.To, o.Limit)
	if err != nil {
		return Report{}, err
	}
	rep.LedgerEvents = len(events)
	for _, e := range events {
		subject := eventbus.RawEvent(e.Portal, e.EventType)
		for _, c := range rep.Consumers {
			if !c.Created.IsZero() && e.ReceivedAt.Before(c.Created) || !matches(c.FilterSubjects, subject) {
				continue
			}
			f, late := judge(e, c, now, o.Grace)
			switch {
			case f == nil:
			case !late:
				rep.InFlight++
			default:
				rep.Findings = append(rep.Findings, *f)
			}
		}
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if a.StreamSeq != b.StreamSeq {
			return a.StreamSeq < b.StreamSeq
		}
		return a.Consumer < b.Consumer
	})
	rep.OK = len(rep.Findings) == 0
	return rep, nil
}

// judge returns the finding for event e at consumer c (nil when the event
// is finished there) and whether it is past the grace period.
func judge(e ledger.AuditEvent, c ConsumerState, now time.Time, grace time.Duration) (*Finding, bool) {
	f := &Finding{EventID: e.ID, StreamSeq: e.StreamSeq, Portal: e.Portal, EventType: e.EventType,
		ReceivedAt: e.ReceivedAt, Consumer: c.Name}
	old := now.Sub(e.ReceivedAt) > grace
	d, ok := e.Deliveries[c.Name]
	if ok {
		switch d.Status {
		case ledger.StatusDone, ledger.StatusSkipped, ledger.StatusDead:
			return nil, false
		case ledger.StatusError:
			// A retry is never "in flight": the operator should see it.
			f.Reason, f.Detail = ReasonRetrying, fmt.Sprintf("still retrying after %d attempts: %s", d.Attempts, d.LastError)
			return f, true
		default:
			f.Reason, f.Detail = ReasonPending, fmt.Sprintf("pending since %s", d.UpdatedAt.UTC().Format(time.RFC3339))
			return f, now.Sub(d.UpdatedAt) > grace
		}
	}
	switch {
	case e.StreamSeq != 0 && e.StreamSeq <= c.AckFloorSeq:
		// Acked but no outcome: the work may be done, its record is not.
		f.Reason = ReasonOutcomeMissing
		f.Detail = fmt.Sprintf("the consumer acknowledged stream sequence %d (ack floor %d) but no outcome reached the ledger", e.StreamSeq, c.AckFloorSeq)
		return f, true
	case e.StreamSeq != 0 && e.StreamSeq <= c.DeliveredSeq:
		f.Reason = ReasonAckFloorBehind
		f.Detail = fmt.Sprintf("delivered but not acknowledged: ack floor %d, event at stream sequence %d, %d awaiting ack",
			c.AckFloorSeq, e.StreamSeq, c.NumAckPending)
	default:
		f.Reason = ReasonNeverDelivered
		f.Detail = fmt.Sprintf("never delivered: the consumer has delivered up to stream sequence %d, %d messages pending",
			c.DeliveredSeq, c.NumPending)
	}
	return f, old
}

// matches reports whether subject matches one of filters (all when empty).
func matches(filters []string, subject string) bool {
	if len(filters) == 0 {
		return true
	}
	return slices.ContainsFunc(filters, func(f string) bool { return subjectMatches(f, subject) })
}

// subjectMatches applies NATS wildcard rules ("*" one token, ">" the rest).
func subjectMatches(filter, subject string) bool {
	ft, st := tokens(filter), tokens(subject)
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || f != "*" && f != st[i] {
			return false
		}
	}
	return len(ft) == len(st)
}

func tokens(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// consumers lists the durable consumers of the raw stream but the monitor's own.
func (a *Auditor) consumers(ctx context.Context, stream jetstream.Stream) ([]ConsumerState, error) {
	lister := stream.ListConsumers(ctx)
	var out []ConsumerState
	for ci := range lister.Info() {
		if ci.Config.Durable == "" || ci.Name == a.self {
			continue
		}
		filters := ci.Config.FilterSubjects
		if ci.Config.FilterSubject != "" {
			filters = append(filters, ci.Config.FilterSubject)
		}
		out = append(out, ConsumerState{Name: ci.Name, FilterSubjects: filters, Created: ci.Created,
			DeliveredSeq: ci.Delivered.Stream, AckFloorSeq: ci.AckFloor.Stream,
			NumPending: ci.NumPending, NumAckPending: ci.NumAckPending})
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("audit: consumers of %s: %w", eventbus.StreamEvents, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type streamMsg struct {
	seq     uint64
	id      string
	subject string
	at      time.Time
}

// scan reads the headers of every message stored in the window (up to
// last) with an ordered consumer, and reports the sequences missing
// between them as gaps.
func (a *Auditor) scan(ctx context.Context, stream jetstream.Stream, o Options, last uint64) ([]streamMsg, []Finding, error) {
	if last == 0 {
		return nil, nil, nil
	}
	from := o.From
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from, HeadersOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("audit: read %s: %w", eventbus.StreamEvents, err)
	}
	var (
		msgs []streamMsg
		gaps []Finding
		prev uint64
	)
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, nil, fmt.Errorf("audit: read %s: %w", eventbus.StreamEvents, err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, nil, fmt.Errorf("audit: read %s: %w", eventbus.StreamEvents, err)
			}
			seq := md.Sequence.Stream
			if seq > last || !md.Timestamp.Before(o.To) {
				done = true
				break
			}
			if prev != 0 && seq > prev+1 {
				gaps = append(gaps, Finding{StreamSeq: prev + 1, Reason: ReasonStreamGap,
					Detail: fmt.Sprintf("stream sequences %d–%d are missing from %s (deleted or purged)", prev+1, seq-1, eventbus.StreamEvents)})
			}
			prev = seq
			id := m.Headers().Get(nats.MsgIdHdr)
			if id == "" {
				id = "seq-" + strconv.FormatUint(seq, 10)
			}
			msgs = append(msgs, streamMsg{seq: seq, id: id, subject: m.Subject(), at: md.Timestamp})
			if seq == last || md.NumPending == 0 {
				done = true
				break
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, nil, fmt.Errorf("audit: read %s: %w", eventbus.StreamEvents, err)
		}
		if done {
			return msgs, gaps, nil
		}
		if n == 0 {
			// Nothing more is stored from the start time on.
			return msgs, gaps, nil
		}
	}
}
