// Package dealcommands is deal-sync's consumer of write commands
// (b24.commands.deal.<member_id>.update): an external system asks for deal
// fields to be written to a portal.
//
// The write is made with the portal's stored credentials (never an event's
// own token, whose event-session TTL would eventually drop the event chain)
// and registered before it is made, so the ONCRMDEALUPDATE it causes is
// recognised as an echo and not published back. A command whose values the
// mirror already holds writes nothing at all: an external system that
// mirrors our changes back as commands cannot start a loop.
package dealcommands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
)

// Durable is the consumer's durable name. PUBLIC API: renaming it makes a
// new consumer that re-executes every command the stream still holds (each
// is still written once: commands are de-duplicated by id).
const Durable = "deal-sync-commands"

// EntityType and Action are the one command this consumer executes:
// b24.commands.deal.<member_id>.update.
const (
	EntityType = "deal"
	Action     = "update"
)

// Spec is the consumer definition: commands one at a time, in parallel.
func Spec() consumer.Spec {
	return consumer.Spec{
		Durable:        Durable,
		Description:    "deal-sync: write deal updates requested by external systems",
		Stream:         eventbus.StreamCommands,
		FilterSubjects: []string{eventbus.Command(EntityType, "*", Action)},
	}
}

// Handler executes deal commands.
type Handler struct {
	clients bitrixport.Clients
	store   *store.Store
	log     *slog.Logger
}

var _ consumer.Handler[*eventsv1.Command] = (*Handler)(nil)

// New returns a Handler.
func New(clients bitrixport.Clients, st *store.Store, log *slog.Logger) *Handler {
	return &Handler{clients: clients, store: st, log: log}
}

// Handle implements consumer.Handler.
func (h *Handler) Handle(ctx context.Context, m *consumer.Message[*eventsv1.Command]) error {
	cmd := m.Payload
	if cmd.GetEntityType() != EntityType || cmd.GetAction() != Action {
		return consumer.Permanent(fmt.Errorf("unsupported command %s.%s", cmd.GetEntityType(), cmd.GetAction()))
	}
	id, err := bitrix.ParseID(cmd.GetEntityId())
	if err != nil || id <= 0 {
		return consumer.Permanent(fmt.Errorf("command %s: bad deal id %q", cmd.GetId(), cmd.GetEntityId()))
	}
	if len(cmd.GetFields()) == 0 {
		return consumer.Permanent(fmt.Errorf("command %s: no fields", cmd.GetId()))
	}
	fields := change.Fields{}
	values := map[string]any{}
	for k, v := range cmd.GetFields() {
		var x any
		if err := json.Unmarshal([]byte(v), &x); err != nil {
			return consumer.Permanent(fmt.Errorf("command %s: field %s is not JSON: %w", cmd.GetId(), k, err))
		}
		fields[k] = json.RawMessage(v)
		values[k] = x
	}

	switch st, err := h.store.WriteStatus(ctx, cmd.GetId()); {
	case err != nil:
		return err
	case st == store.WriteWritten || st == store.WriteNoop:
		return consumer.Skip("duplicate command")
	}
	snap, err := h.store.GetDeal(ctx, cmd.GetMemberId(), int64(id))
	if err != nil {
		return err
	}
	w := store.Write{CommandID: cmd.GetId(), MemberID: cmd.GetMemberId(), DealID: int64(id), Fields: fields, Origin: cmd.GetOrigin()}
	if snap.Live() && current(snap.Fields, fields) {
		if err := h.store.RecordWrite(ctx, w, store.WriteNoop); err != nil {
			return err
		}
		return consumer.Skip("values already current")
	}

	client, err := h.clients.ClientFor(ctx, cmd.GetMemberId())
	if err != nil {
		return bitrixport.Classify(err)
	}
	// Register first: the echo may arrive before UpdateDeal returns.
	if err := h.store.RecordWrite(ctx, w, store.WritePending); err != nil {
		return err
	}
	if err := client.UpdateDeal(ctx, id, values, bitrix.DealUpdate{}); err != nil {
		var be *bitrix.Error
		if errors.As(err, &be) && !be.Ambiguous && !bitrix.Retryable(err) {
			// Refused for sure: forget it, so it cannot mask a real change.
			_ = h.store.DeleteWrite(context.WithoutCancel(ctx), w.CommandID)
		}
		if errors.Is(err, bitrix.KindNotFound) {
			return consumer.Permanent(bitrixport.Kinded{Err: err})
		}
		return bitrixport.Classify(err)
	}
	m.Logger.InfoContext(ctx, "deal written", "deal_id", id, "fields", len(fields), "origin", cmd.GetOrigin())
	return h.store.SetWriteStatus(ctx, w.CommandID, store.WriteWritten)
}

// current reports whether the mirror already holds every value.
func current(have, want change.Fields) bool {
	for k, v := range want {
		if !change.SameValue(have[k], v) {
			return false
		}
	}
	return true
}
