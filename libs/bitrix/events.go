package bitrix

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
)

// EventBinding is one event handler registration (§1.2, §1.3).
type EventBinding struct {
	// Event is the event code, e.g. "ONCRMDEALUPDATE" (the portal
	// upper-cases it).
	Event string
	// Handler is the URL Bitrix24 POSTs to; required for online bindings,
	// ignored for offline ones. Keep it ≤255 characters (§1.2).
	Handler string
	// AuthType is the user whose token the handler receives; 0 means the
	// user who triggered the event.
	AuthType ID
	// Offline queues the event for event.offline.get instead of POSTing it.
	Offline bool
	// AuthConnector is the offline queue's source key (§2.4).
	AuthConnector string
	// Options are per-event options; only minTimeout for ONOFFLINEEVENT is
	// kept by the portal (§1.2).
	Options map[string]any
}

func (b EventBinding) params(bind bool) map[string]any {
	p := map[string]any{"event": b.Event}
	if !b.Offline {
		p["handler"] = b.Handler
		p["auth_type"] = b.AuthType
	} else {
		p["event_type"] = "offline"
		if b.AuthConnector != "" && bind {
			p["auth_connector"] = b.AuthConnector
		}
	}
	if bind && len(b.Options) > 0 {
		p["options"] = b.Options
	}
	return p
}

// BindEvent calls event.bind (OAuth only). A binding that already exists is
// success: the portal answers "Handler already binded", and bind is not
// idempotent otherwise (§1.2).
func (c *Client) BindEvent(ctx context.Context, b EventBinding) error {
	err := c.Call(ctx, "event.bind", b.params(true), nil, Idempotent(true))
	if IsAlreadyBound(err) {
		return nil
	}
	return err
}

// IsAlreadyBound reports the event.bind error for a duplicate binding
// (ERROR_CORE "Unable to set event handler: Handler already binded", §1.2),
// including the concurrent-bind loser's "Process of binding the handler has
// already started".
func IsAlreadyBound(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	d := strings.ToLower(e.Description)
	return strings.Contains(d, "already binded") || strings.Contains(d, "already bound") ||
		strings.Contains(d, "binding the handler has already started")
}

// EventBindings calls event.get: this application's handlers, ordered by
// handler ID (§1.3). Outgoing webhooks are not listed.
func (c *Client) EventBindings(ctx context.Context) ([]EventBinding, error) {
	var rows []struct {
		Event       string `json:"event"`
		Handler     string `json:"handler"`
		AuthType    ID     `json:"auth_type"`
		Offline     Bool   `json:"offline"`
		ConnectorID string `json:"connector_id"`
	}
	resp, err := c.Do(ctx, "event.get", nil)
	if err != nil {
		return nil, err
	}
	if !resp.IsEmptyResult() {
		if err := json.Unmarshal(resp.Result, &rows); err != nil {
			return nil, &Error{Status: 200, Method: "event.get", Portal: c.portal, Description: "decode bindings: " + err.Error(), Err: err, kind: KindPermanent}
		}
	}
	out := make([]EventBinding, len(rows))
	for i, r := range rows {
		out[i] = EventBinding{Event: r.Event, Handler: r.Handler, AuthType: r.AuthType, Offline: bool(r.Offline), AuthConnector: r.ConnectorID}
	}
	return out, nil
}

// UnbindEvent calls event.unbind and returns how many handlers were removed
// (§1.4). AuthType is always sent, so only that user's variant matches.
func (c *Client) UnbindEvent(ctx context.Context, b EventBinding) (int, error) {
	var res struct {
		Count flexInt `json:"count"`
	}
	if err := c.Call(ctx, "event.unbind", b.params(false), &res, Idempotent(true)); err != nil {
		return 0, err
	}
	return int(res.Count), nil
}

// TestEvent calls event.test, which fires ONAPPTEST with query under
// data[QUERY] at the handlers bound for it (§1.5): a synthetic probe.
func (c *Client) TestEvent(ctx context.Context, query map[string]any) error {
	return c.Call(ctx, "event.test", query, nil, Idempotent(true))
}

// OfflineQuery selects records for event.offline.get (§2.2).
type OfflineQuery struct {
	// Filter and Order use ID, TIMESTAMP_X, EVENT_NAME, MESSAGE_ID with
	// operator prefixes such as ">=ID".
	Filter map[string]any
	Order  map[string]string // see Filter
	// Limit is the batch size; default 50.
	Limit int
	// Clear deletes the records in the same call (clear=1). The zero value
	// reserves them under a process_id instead (clear=0, needs the
	// rest_offline_extended feature), which is the safe mode: nothing is
	// lost if the caller crashes (§9.3).
	Clear bool
	// ProcessID re-reads a batch reserved earlier.
	ProcessID string
	// AuthConnector reads the queue of that source (§2.4).
	AuthConnector string
	// Errors returns records marked with event.offline.error.
	Errors bool
}

// OfflineEvent is one queued record; fields mirror the API's (see the JSON
// tags).
type OfflineEvent struct {
	ID              ID              `json:"ID"`
	Timestamp       string          `json:"TIMESTAMP_X"`
	EventName       string          `json:"EVENT_NAME"`
	EventData       json.RawMessage `json:"EVENT_DATA"`       // e.g. {"FIELDS":{"ID":"123"}}, or false
	EventAdditional json.RawMessage `json:"EVENT_ADDITIONAL"` // {"user_id":"1"} or false
	MessageID       string          `json:"MESSAGE_ID"`
	ProcessID       string          `json:"PROCESS_ID,omitempty"`
	Error           Bool            `json:"ERROR,omitempty"`
}

// OfflineBatch is event.offline.get's answer. ProcessID is empty when the
// records were cleared in the same call.
type OfflineBatch struct {
	// ProcessID identifies the reservation for ClearOfflineEvents and
	// ErrorOfflineEvents.
	ProcessID string
	Events    []OfflineEvent // in the requested order
}

// OfflineEvents calls event.offline.get (admin only, §2.2). It is treated as
// a write: reserving or clearing records must not be repeated blindly.
func (c *Client) OfflineEvents(ctx context.Context, q OfflineQuery) (*OfflineBatch, error) {
	p := map[string]any{"clear": 0}
	if q.Clear {
		p["clear"] = 1
	}
	if len(q.Filter) > 0 {
		p["filter"] = q.Filter
	}
	if len(q.Order) > 0 {
		p["order"] = q.Order
	}
	if q.Limit > 0 {
		p["limit"] = q.Limit
	}
	if q.ProcessID != "" {
		p["process_id"] = q.ProcessID
	}
	if q.AuthConnector != "" {
		p["auth_connector"] = q.AuthConnector
	}
	if q.Errors {
		p["error"] = 1
	}
	var res struct {
		ProcessID *string        `json:"process_id"`
		Events    []OfflineEvent `json:"events"`
	}
	if err := c.Call(ctx, "event.offline.get", p, &res, Idempotent(q.ProcessID != "")); err != nil {
		return nil, err
	}
	b := &OfflineBatch{Events: res.Events}
	if res.ProcessID != nil {
		b.ProcessID = *res.ProcessID
	}
	return b, nil
}

// ClearOfflineEvents calls event.offline.clear for a reserved batch: the
// given record IDs, or the given message IDs, or (both nil) the whole batch
// (§2.3).
func (c *Client) ClearOfflineEvents(ctx context.Context, processID string, ids []ID, messageIDs []string) error {
	p := map[string]any{"process_id": processID}
	if len(ids) > 0 {
		p["id"] = ids
	}
	if len(messageIDs) > 0 {
		p["message_id"] = messageIDs
	}
	return c.Call(ctx, "event.offline.clear", p, nil, Idempotent(true))
}

// ErrorOfflineEvents calls event.offline.error: the records are marked as
// failed and un-reserved, to be fetched again with OfflineQuery.Errors
// (§2.3).
func (c *Client) ErrorOfflineEvents(ctx context.Context, processID string, messageIDs []string) error {
	return c.Call(ctx, "event.offline.error", map[string]any{"process_id": processID, "message_id": messageIDs}, nil, Idempotent(true))
}
