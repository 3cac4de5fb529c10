// Package ledger is the monitor's delivery ledger in PostgreSQL: one row per
// accepted raw event (webhook_events), one row per event and consumer
// (deliveries), plus the small tables that alerts and the dashboard read
// (last_seen, outcome_counts, replays). Writes are batched and idempotent, so
// a redelivered message never makes a second row or a second count.
package ledger

import "time"

// Delivery statuses, one per (event, consumer).
const (
	// StatusPending: expected but not attempted yet (a replay in flight).
	StatusPending = "pending"
	// StatusDone: the last attempt succeeded.
	StatusDone = "done"
	// StatusError: the last attempt failed and the consumer will retry.
	StatusError = "error"
	// StatusDead: the consumer gave up; the event is in the dead-letter stream.
	StatusDead = "dead"
	// StatusSkipped: nothing to do (a duplicate, an echo, a no-op).
	StatusSkipped = "skipped"
)

// Statuses lists every delivery status, in the order of severity used to
// derive an event's overall status (first match wins).
var Statuses = []string{StatusDead, StatusError, StatusPending, StatusDone, StatusSkipped}

// Event is one accepted raw event as recorded in webhook_events.
type Event struct {
	ID             string    `json:"id"`
	Portal         string    `json:"portal"`
	Domain         string    `json:"domain"`
	EventType      string    `json:"event_type"`
	EntityID       string    `json:"entity_id"`
	Source         string    `json:"source"`
	ReplayOf       string    `json:"replay_of,omitempty"`
	ReceivedAt     time.Time `json:"received_at"`
	EventTS        time.Time `json:"event_ts,omitzero"`
	TraceID        string    `json:"trace_id"`
	HandlerID      string    `json:"handler_id,omitempty"`
	Route          string    `json:"route,omitempty"`
	ClientEndpoint string    `json:"client_endpoint,omitempty"`
	ContentType    string    `json:"content_type,omitempty"`
	Payload        []byte    `json:"-"`
	StreamSeq      uint64    `json:"stream_seq,omitempty"`
	// Status is derived from the deliveries when read; it is not stored.
	Status string `json:"status"`
}

// Attempt is one consumer outcome (one processing attempt) to fold into the
// delivery row of (EventID, Consumer).
type Attempt struct {
	EventID   string
	Consumer  string
	Portal    string
	EventType string
	EntityID  string
	Status    string // done, error (retry), dead or skipped
	Attempt   int
	Error     string
	ErrorKind string
	Duration  time.Duration
	TraceID   string
	At        time.Time
}

// DeadLetter is one message from the dead-letter stream. Event is the
// original raw event decoded from its payload (recorded too, in case the
// ledger never saw it); Event.ID is the key of the delivery row.
type DeadLetter struct {
	Event      Event
	Consumer   string
	Reason     string
	Error      string
	Deliveries int
	StreamSeq  uint64 // sequence in the dead-letter stream
	At         time.Time
}

// Delivery is the folded state of one event at one consumer.
type Delivery struct {
	EventID        string     `json:"event_id"`
	Consumer       string     `json:"consumer"`
	Portal         string     `json:"portal"`
	EventType      string     `json:"event_type"`
	EntityID       string     `json:"entity_id"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastError      string     `json:"last_error,omitempty"`
	ErrorKind      string     `json:"error_kind,omitempty"`
	FirstAttemptAt *time.Time `json:"first_attempt_at,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	DurationMS     float64    `json:"duration_ms"`
	TraceID        string     `json:"trace_id,omitempty"`
	DeadReason     string     `json:"dead_reason,omitempty"`
	DeadAt         *time.Time `json:"dead_at,omitempty"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// Replay records one republish of an event.
type Replay struct {
	ID           string    `json:"id"`
	OriginalID   string    `json:"original_id"`
	ReplayedFrom string    `json:"replayed_from"`
	Consumer     string    `json:"consumer,omitempty"`
	RequestedAt  time.Time `json:"requested_at"`
	StreamSeq    uint64    `json:"stream_seq"`
	// Status is the replayed event's derived status (pending until the
	// replayed event and its deliveries are recorded).
	Status string `json:"status"`
}
