package eventbus

// Subscription control subjects: core-NATS request/reply (never stored in a
// stream), answered by any subscriptions replica (queue group
// "subscriptions") for the operator CLI. Request: SubscriptionsRequest JSON;
// reply: SubscriptionsReply JSON. They live here, not in the service, so a
// client (b24ctl) needs only this library and not the service with its
// database and consumer runtime.
const (
	// ControlSubscriptionsDiff compares each portal's declared event
	// bindings with the bound ones; it changes nothing.
	ControlSubscriptionsDiff = "b24.control.subscriptions.diff"
	// ControlSubscriptionsApply compares and repairs: it binds what is
	// missing and unbinds what is not declared.
	ControlSubscriptionsApply = "b24.control.subscriptions.apply"
)

// SubscriptionsRequest selects the portals of a subscription control call.
type SubscriptionsRequest struct {
	// MemberID selects one portal; empty means every installed portal.
	MemberID string `json:"member_id,omitempty"`
}

// SubscriptionBinding is one event.bind row in a SubscriptionsReply.
type SubscriptionBinding struct {
	// Event is the event code, upper case (e.g. ONCRMDEALUPDATE).
	Event string `json:"event"`
	// Handler is the URL Bitrix24 posts the event to; empty for the
	// offline queue.
	Handler string `json:"handler,omitempty"`
	// Offline is true for a binding to the portal's offline event queue.
	Offline bool `json:"offline"`
}

// SubscriptionPlan is the diff (and, for apply, the repair) of one portal.
type SubscriptionPlan struct {
	MemberID string `json:"member_id"`
	// Mode is the portal's declared delivery mode (push or offline).
	Mode string `json:"mode"`
	// InSync counts the declared bindings already in place.
	InSync int `json:"in_sync"`
	// Bind lists declared bindings that are missing.
	Bind []SubscriptionBinding `json:"bind"`
	// Unbind lists bound rows that are not declared.
	Unbind []SubscriptionBinding `json:"unbind"`
	// Bound, Unbound and Failed are filled by apply.
	Bound   []SubscriptionBinding `json:"bound,omitempty"`
	Unbound []SubscriptionBinding `json:"unbound,omitempty"`
	Failed  []string              `json:"failed,omitempty"`
	// Error says why the portal could not be checked.
	Error string `json:"error,omitempty"`
}

// SubscriptionsReply answers ControlSubscriptionsDiff and
// ControlSubscriptionsApply.
type SubscriptionsReply struct {
	Portals []SubscriptionPlan `json:"portals"`
	// Error is set when the request itself failed.
	Error string `json:"error,omitempty"`
}
