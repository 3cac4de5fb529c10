package ledger

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// StatusReceived is the derived status of an event no consumer has reported
// on yet.
const StatusReceived = "received"

// derivedStatus is the SQL expression for an event's overall status: the
// most severe status among its deliveries, "received" when it has none.
const derivedStatus = `COALESCE((SELECT d.status FROM monitor.deliveries d WHERE d.event_id = e.id
	ORDER BY array_position(ARRAY['dead','error','pending','done','skipped'], d.status) LIMIT 1), 'received')`

const eventColumns = `e.id, e.portal, e.domain, e.event_type, e.entity_id, e.source, e.replay_of, e.received_at,
	e.event_ts, e.trace_id, e.handler_id, e.route, e.client_endpoint, e.content_type, e.stream_seq`

// MaxPage is the most rows one SearchEvents page, FindDeliveries or
// DeadLetters call returns.
const MaxPage = 1000

// EventFilter selects events. Zero fields do not filter.
type EventFilter struct {
	Portal    string
	EventType string
	// Status matches events with at least one delivery in that status, or,
	// for "received", events without any delivery.
	Status   string
	Source   string
	EntityID string
	From, To time.Time // received_at in [From, To)
	// Consumer restricts Status to that consumer's deliveries.
	Consumer string
	// Cursor continues a previous page (EventPage.NextCursor).
	Cursor string
	// Limit is the page size; default 50, at most 1000.
	Limit int
}

// EventPage is one page of events, newest first.
type EventPage struct {
	Events     []Event `json:"events"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// ErrBadCursor is returned for a cursor that this store did not issue.
var ErrBadCursor = errors.New("ledger: bad cursor")

func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixNano(), 10) + ":" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ns, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	return time.Unix(0, n), id, nil
}

// args builds a parameter list for a query.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// SearchEvents returns the events matching f, newest first, with their
// derived status. It returns ErrBadCursor for a malformed cursor.
func (s *Store) SearchEvents(ctx context.Context, f EventFilter) (EventPage, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, MaxPage)
	var (
		a     args
		where []string
	)
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = "+a.add(v))
		}
	}
	eq("e.portal", f.Portal)
	eq("e.event_type", f.EventType)
	eq("e.source", f.Source)
	eq("e.entity_id", f.EntityID)
	if !f.From.IsZero() {
		where = append(where, "e.received_at >= "+a.add(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "e.received_at < "+a.add(f.To))
	}
	if f.Cursor != "" {
		t, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return EventPage{}, err
		}
		where = append(where, fmt.Sprintf("(e.received_at, e.id) < (%s, %s)", a.add(t), a.add(id)))
	}
	if f.Status != "" {
		cons := ""
		if f.Consumer != "" {
			cons = " AND d.consumer = " + a.add(f.Consumer)
		}
		switch f.Status {
		case StatusReceived:
			where = append(where, "NOT EXISTS (SELECT 1 FROM monitor.deliveries d WHERE d.event_id = e.id"+cons+")")
		case StatusDone, StatusSkipped:
			// Common statuses: walk the events in order and probe deliveries.
			where = append(where, "e.id IN (SELECT d.event_id FROM monitor.deliveries d WHERE d.status = "+a.add(f.Status)+cons+")")
		default:
			// Rare statuses (dead, error, pending): collect the few ids from
			// the partial index first, then look them up. A delivery is
			// updated after its event was received, so From bounds it too.
			since := ""
			if !f.From.IsZero() {
				since = " AND d.updated_at >= " + a.add(f.From)
			}
			where = append(where, "e.id = ANY(ARRAY(SELECT d.event_id FROM monitor.deliveries d WHERE d.status = "+
				a.add(f.Status)+cons+since+"))")
		}
	} else if f.Consumer != "" {
		where = append(where, "e.id IN (SELECT d.event_id FROM monitor.deliveries d WHERE d.consumer = "+a.add(f.Consumer)+")")
	}
	q := "SELECT " + eventColumns + ", " + derivedStatus + " FROM monitor.webhook_events e"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY e.received_at DESC, e.id DESC LIMIT " + a.add(f.Limit+1)
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return EventPage{}, fmt.Errorf("ledger: search events: %w", err)
	}
	events, err := pgx.CollectRows(rows, scanEvent(false))
	if err != nil {
		return EventPage{}, fmt.Errorf("ledger: search events: %w", err)
	}
	page := EventPage{Events: events}
	if len(events) > f.Limit {
		page.Events = events[:f.Limit]
		last := page.Events[f.Limit-1]
		page.NextCursor = encodeCursor(last.ReceivedAt, last.ID)
	}
	if page.Events == nil {
		page.Events = []Event{}
	}
	return page, nil
}

func scanEvent(withPayload bool) pgx.RowToFunc[Event] {
	return func(row pgx.CollectableRow) (Event, error) {
		var (
			e   Event
			ts  pgtype.Timestamptz
			seq int64
		)
		dst := []any{&e.ID, &e.Portal, &e.Domain, &e.EventType, &e.EntityID, &e.Source, &e.ReplayOf, &e.ReceivedAt,
			&ts, &e.TraceID, &e.HandlerID, &e.Route, &e.ClientEndpoint, &e.ContentType, &seq, &e.Status}
		if withPayload {
			dst = append(dst, &e.Payload)
		}
		err := row.Scan(dst...)
		e.EventTS, e.StreamSeq = ts.Time, uint64(seq)
		e.ReceivedAt = e.ReceivedAt.UTC()
		if !e.EventTS.IsZero() {
			e.EventTS = e.EventTS.UTC()
		}
		return e, err
	}
}

// GetEvent returns one event with its payload. When the id was accepted more
// than once (the same message id re-published after JetStream's
// de-duplication window) the newest acceptance is returned. It returns
// ErrNotFound when the id is unknown.
func (s *Store) GetEvent(ctx context.Context, id string) (Event, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+eventColumns+", "+derivedStatus+`, e.payload
		FROM monitor.webhook_events e WHERE e.id = $1 ORDER BY e.received_at DESC LIMIT 1`, id)
	if err != nil {
		return Event{}, fmt.Errorf("ledger: get event: %w", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEvent(true))
	if errors.Is(err, pgx.ErrNoRows) {
		return Event{}, ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("ledger: get event: %w", err)
	}
	return e, nil
}

const deliverySelect = `SELECT event_id, consumer, portal, event_type, entity_id, status, attempts, last_error, error_kind,
	first_attempt_at, last_attempt_at, duration_ms, trace_id, dead_reason, dead_at, updated_at FROM monitor.deliveries d`

func scanDelivery(row pgx.CollectableRow) (Delivery, error) {
	var (
		d                   Delivery
		first, last, deadAt pgtype.Timestamptz
	)
	err := row.Scan(&d.EventID, &d.Consumer, &d.Portal, &d.EventType, &d.EntityID, &d.Status, &d.Attempts,
		&d.LastError, &d.ErrorKind, &first, &last, &d.DurationMS, &d.TraceID, &d.DeadReason, &deadAt, &d.UpdatedAt)
	ptr := func(t pgtype.Timestamptz) *time.Time {
		if !t.Valid {
			return nil
		}
		u := t.Time.UTC()
		return &u
	}
	d.FirstAttemptAt, d.LastAttemptAt, d.DeadAt = ptr(first), ptr(last), ptr(deadAt)
	d.UpdatedAt = d.UpdatedAt.UTC()
	return d, err
}

// Deliveries returns the delivery rows of one event, by consumer.
func (s *Store) Deliveries(ctx context.Context, eventID string) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, deliverySelect+" WHERE event_id = $1 ORDER BY consumer", eventID)
	if err != nil {
		return nil, fmt.Errorf("ledger: deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("ledger: deliveries: %w", err)
	}
	return out, nil
}

// DeliveryFilter selects delivery rows. Zero fields do not filter.
type DeliveryFilter struct {
	Statuses  []string
	Consumer  string
	Portal    string
	EventType string
	// From and To bound updated_at (or dead_at when DeadOnly).
	From, To time.Time
	// DeadOnly selects dead letters, ordered by dead_at.
	DeadOnly bool
	// Limit is the maximum number of rows; default 50, at most 1000.
	Limit int
	// After continues a previous page: only rows ordered after it (older,
	// or the same time with a smaller event id and consumer). Zero: from
	// the newest.
	After DeliveryKey
}

// DeliveryKey is a delivery's place in FindDeliveries' order (time, event
// id, consumer, newest first): the keyset cursor of the next page.
type DeliveryKey struct {
	At       time.Time
	EventID  string
	Consumer string
}

// Key returns d's place in the order of f (dead_at when f.DeadOnly, else
// updated_at), for DeliveryFilter.After.
func (d Delivery) Key(f DeliveryFilter) DeliveryKey {
	at := d.UpdatedAt
	if f.DeadOnly && d.DeadAt != nil {
		at = *d.DeadAt
	}
	return DeliveryKey{At: at, EventID: d.EventID, Consumer: d.Consumer}
}

// DeadLetterRow is one dead delivery with the state of its latest replay.
type DeadLetterRow struct {
	Delivery
	// Replay is the newest replay of the event, if any.
	Replay *Replay `json:"replay,omitempty"`
}

// FindDeliveries returns delivery rows matching f, newest first.
func (s *Store) FindDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	q, a := deliveryQuery(f)
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("ledger: find deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("ledger: find deliveries: %w", err)
	}
	return out, nil
}

func deliveryQuery(f DeliveryFilter) (string, args) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, MaxPage)
	var (
		a     args
		where []string
	)
	timeCol := "d.updated_at"
	if f.DeadOnly {
		timeCol = "d.dead_at"
		where = append(where, "d.dead_at IS NOT NULL")
	}
	if len(f.Statuses) > 0 {
		where = append(where, "d.status = ANY("+a.add(f.Statuses)+"::text[])")
	}
	for _, c := range [][2]string{{"d.consumer", f.Consumer}, {"d.portal", f.Portal}, {"d.event_type", f.EventType}} {
		if c[1] != "" {
			where = append(where, c[0]+" = "+a.add(c[1]))
		}
	}
	if !f.From.IsZero() {
		where = append(where, timeCol+" >= "+a.add(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, timeCol+" < "+a.add(f.To))
	}
	if !f.After.At.IsZero() {
		where = append(where, "("+timeCol+", d.event_id, d.consumer) < ("+a.add(f.After.At)+", "+a.add(f.After.EventID)+", "+a.add(f.After.Consumer)+")")
	}
	q := deliverySelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + timeCol + " DESC, d.event_id DESC, d.consumer DESC LIMIT " + a.add(f.Limit)
	return q, a
}

// DeadLetters returns dead deliveries matching f (DeadOnly is implied), each
// with its newest replay and that replay's status.
func (s *Store) DeadLetters(ctx context.Context, f DeliveryFilter) ([]DeadLetterRow, error) {
	f.DeadOnly = true
	ds, err := s.FindDeliveries(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetterRow, len(ds))
	for i, d := range ds {
		out[i].Delivery = d
		rs, err := s.Replays(ctx, d.EventID, d.Consumer)
		if err != nil {
			return nil, err
		}
		if len(rs) > 0 {
			out[i].Replay = &rs[0]
		}
	}
	return out, nil
}
