// Package handler is contact-mirror's consumer of ONCRMCONTACTADD: it
// fetches each new contact (crm.contact.get) and keeps it in
// contact_mirror.contacts, once per change.
package handler

import (
	"context"
	"encoding/json"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/contact-mirror/internal/store"
)

// Durable is the consumer's durable name. PUBLIC API: renaming it makes a
// new consumer that reprocesses everything the stream still holds.
const Durable = "contact-mirror"

// Events are the raw events this consumer handles.
var Events = []string{"ONCRMCONTACTADD"}

// Spec is the consumer definition; retry policy lives here, not in Handle.
func Spec() consumer.Spec {
	return consumer.Spec{
		Durable:        Durable,
		Description:    "contact-mirror: record ONCRMCONTACTADD once",
		FilterSubjects: eventbus.RawEventFilter(Events...),
	}
}

// Saver is what the handler needs from storage (declared here, where it is
// used; *store.Store implements it).
type Saver interface {
	// Save stores the contact; it reports false when nothing changed.
	Save(ctx context.Context, c store.Contact) (bool, error)
}

// Handler handles one event at a time. It never acks: it returns nil,
// consumer.Skip, consumer.Permanent, or a (transient) error.
type Handler struct {
	clients bitrixport.Clients
	rec     Saver
}

var _ consumer.Handler[*eventsv1.Envelope] = (*Handler)(nil)

// New returns a Handler calling portals through clients (in the service,
// bitrixport.SharedClients).
func New(clients bitrixport.Clients, rec Saver) *Handler {
	return &Handler{clients: clients, rec: rec}
}

// Handle implements consumer.Handler. A portal this service has no REST
// credentials for fails permanently (the event is dead-lettered and can be
// replayed once the portal is configured); a failing store is transient.
func (h *Handler) Handle(ctx context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
	client, err := h.clients.ClientFor(ctx, m.MemberID)
	if err != nil {
		return bitrixport.Classify(err)
	}
	var c struct {
		Name     string `json:"NAME"`
		LastName string `json:"LAST_NAME"`
		Email    []struct {
			Value string `json:"VALUE"`
		} `json:"EMAIL"`
	}
	var raw json.RawMessage
	if err := client.Call(ctx, "crm.contact.get", map[string]any{"id": m.EntityID}, &raw); err != nil {
		return bitrixport.Classify(err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return consumer.Permanent(err)
	}
	contact := store.Contact{MemberID: m.MemberID, ID: m.EntityID, Name: c.Name, LastName: c.LastName, Fields: raw}
	if len(c.Email) > 0 {
		contact.Email = c.Email[0].Value
	}
	changed, err := h.rec.Save(ctx, contact)
	if err != nil {
		return err // transient: redelivered with the Spec's backoff
	}
	if !changed {
		return consumer.Skip("unchanged")
	}
	m.Logger.InfoContext(ctx, "contact mirrored")
	return nil
}
