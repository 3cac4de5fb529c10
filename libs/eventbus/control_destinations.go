package eventbus

import "time"

// Destination control subjects: core-NATS request/reply answered by any
// destinations replica (queue group "destinations"). Request and reply are
// JSON. They live here so b24ctl and the monitor need only this library.
const (
	// ControlDestinationsList lists the declared destinations with their
	// state. Request: DestinationsRequest (may be empty); reply:
	// DestinationsReply.
	ControlDestinationsList = "b24.control.destinations.list"
	// ControlDestinationsReplay delivers one stored message again to one
	// destination only, with the same webhook-id as the first delivery.
	// Request: DestinationReplayRequest; reply: DestinationReplayReply.
	ControlDestinationsReplay = "b24.control.destinations.replay"
)

// DestinationsRequest selects destinations by name; empty means all.
type DestinationsRequest struct {
	Name string `json:"name,omitempty"`
}

// DestinationInfo is one destination as the operator sees it.
type DestinationInfo struct {
	Name string `json:"name"`
	// URL is the endpoint without credentials or query.
	URL string `json:"url"`
	// Consumer is the durable and ledger consumer name, "dest-<name>".
	Consumer string `json:"consumer"`
	// Stream and Subjects are what it receives.
	Stream   string   `json:"stream"`
	Subjects []string `json:"subjects"`
	Timeout  string   `json:"timeout"`
	Rate     float64  `json:"rate"`
	// Concurrency is the requests in flight at most.
	Concurrency int    `json:"concurrency"`
	RetryFor    string `json:"retry_for"`
	// State is the circuit breaker as the answering replica sees it:
	// delivering, paused or probing. Paused and PausedUntil are the
	// server's (the durable's pause), the same for every replica.
	State       string    `json:"state"`
	Paused      bool      `json:"paused"`
	PausedUntil time.Time `json:"paused_until,omitzero"`
	// Failures are failed attempts in a row at the answering replica.
	Failures int `json:"failures"`
	// Pauses counts how often the answering replica paused it.
	Pauses int `json:"pauses"`
	// Pending are messages not yet delivered to the durable; AckPending
	// those delivered and not yet settled.
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
}

// DestinationsReply answers ControlDestinationsList.
type DestinationsReply struct {
	Destinations []DestinationInfo `json:"destinations"`
	// File is the destinations file the answering replica reads.
	File  string `json:"file,omitempty"`
	Error string `json:"error,omitempty"`
}

// DestinationReplayRequest names one stored message and the destination it
// is delivered to again. The message is found by StreamSeq in the
// destination's stream when set, else by MessageID among Subject's
// messages (a domain change: its per-entity subject).
type DestinationReplayRequest struct {
	// Destination is the destination's name or its consumer "dest-<name>".
	Destination string `json:"destination"`
	// ReplayID, when set, is the event id the attempt's outcome is reported
	// under (the monitor's replay record), so the ledger tracks the replay
	// beside the first delivery; empty reports it as the message's own.
	ReplayID  string `json:"replay_id,omitempty"`
	MessageID string `json:"message_id"`
	StreamSeq uint64 `json:"stream_seq,omitempty"`
	Subject   string `json:"subject,omitempty"`
}

// DestinationReplayReply says how the replayed delivery went.
type DestinationReplayReply struct {
	// WebhookID is the delivery's webhook-id: the original delivery's.
	WebhookID string `json:"webhook_id,omitempty"`
	// Status is the receiver's HTTP status (0: no answer).
	Status int `json:"status"`
	// Delivered is true on a 2xx.
	Delivered bool   `json:"delivered"`
	Error     string `json:"error,omitempty"`
}
