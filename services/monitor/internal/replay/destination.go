package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/nats-io/nats.go"
)

// DestinationPrefix starts the consumer name of an HTTP destination
// (services/destinations): "dest-<name>".
const DestinationPrefix = "dest-"

// Destinations delivers one stored message again to one HTTP destination
// (eventbus.ControlDestinationsReplay).
type Destinations interface {
	Replay(ctx context.Context, req eventbus.DestinationReplayRequest) (eventbus.DestinationReplayReply, error)
}

// ErrDestinationReplay is returned when the destinations service refused or
// could not deliver a replay.
var ErrDestinationReplay = errors.New("replay: destination")

// NATSDestinations asks a destinations replica over NATS request/reply.
type NATSDestinations struct{ NC *nats.Conn }

var _ Destinations = NATSDestinations{}

// Replay sends req and waits for the delivery's result.
func (d NATSDestinations) Replay(ctx context.Context, req eventbus.DestinationReplayRequest) (eventbus.DestinationReplayReply, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return eventbus.DestinationReplayReply{}, err
	}
	msg, err := d.NC.RequestWithContext(ctx, eventbus.ControlDestinationsReplay, data)
	if errors.Is(err, nats.ErrNoResponders) {
		return eventbus.DestinationReplayReply{}, fmt.Errorf("%w: no destinations service answers on %s", ErrDestinationReplay, eventbus.ControlDestinationsReplay)
	}
	if err != nil {
		return eventbus.DestinationReplayReply{}, fmt.Errorf("%w: %w", ErrDestinationReplay, err)
	}
	var rep eventbus.DestinationReplayReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return rep, fmt.Errorf("%w: bad reply: %w", ErrDestinationReplay, err)
	}
	return rep, nil
}

// WithDestinations lets the replayer replay to HTTP destinations: a replay
// whose consumer is "dest-<name>" reaches that destination only, through
// the destinations service, with the first delivery's webhook-id, instead
// of being republished to every consumer.
func (r *Replayer) WithDestinations(d Destinations) *Replayer {
	r.dest = d
	return r
}

// toDestination replays event id to the destination consumer. The message
// is found by the event's stream sequence (a raw event) or, for a domain
// change (not a ledger event), by the subject its delivery row names. The
// replay is recorded with the consumer, and the destination reports its
// attempt under the replay's id, so the ledger shows it as it shows any
// replay.
func (r *Replayer) toDestination(ctx context.Context, id, consumer string) (ledger.Replay, error) {
	req, original, err := r.destinationRequest(ctx, id, consumer)
	if err != nil {
		return ledger.Replay{}, err
	}
	rep := ledger.Replay{ID: NewID(original), OriginalID: original, ReplayedFrom: id, Consumer: consumer,
		RequestedAt: r.now().UTC(), Status: ledger.StatusPending}
	req.ReplayID = rep.ID
	res, err := r.dest.Replay(ctx, req)
	if err != nil {
		return ledger.Replay{}, err
	}
	if res.WebhookID == "" && res.Error != "" {
		return ledger.Replay{}, fmt.Errorf("%w: %s", ErrDestinationReplay, res.Error)
	}
	rep.Status = ledger.StatusDone
	if !res.Delivered {
		rep.Status = ledger.StatusError
	}
	if err := r.store.RecordReplay(ctx, rep); err != nil {
		return rep, fmt.Errorf("replay: %s delivered to %s but not recorded: %w", id, consumer, err)
	}
	if !res.Delivered {
		return rep, fmt.Errorf("%w: %s answered %d: %s", ErrDestinationReplay, consumer, res.Status, res.Error)
	}
	return rep, nil
}

func (r *Replayer) destinationRequest(ctx context.Context, id, consumer string) (eventbus.DestinationReplayRequest, string, error) {
	req := eventbus.DestinationReplayRequest{Destination: consumer, MessageID: id}
	e, err := r.store.GetEvent(ctx, id)
	switch {
	case err == nil:
		if Lifecycle(e.EventType) {
			return req, "", ErrLifecycle
		}
		if e.StreamSeq == 0 {
			return req, "", fmt.Errorf("%w: event %s has no stream sequence", ErrNotReplayable, id)
		}
		req.StreamSeq = e.StreamSeq
		return req, id, nil
	case !errors.Is(err, ledger.ErrNotFound):
		return req, "", err
	}
	ds, err := r.store.Deliveries(ctx, id)
	if err != nil {
		return req, "", err
	}
	for _, d := range ds {
		entity, ok := strings.CutPrefix(d.EventType, "change_")
		if d.Consumer != consumer || !ok || !eventbus.ValidToken(entity) || !eventbus.ValidToken(d.Portal) || !eventbus.ValidToken(d.EntityID) {
			continue
		}
		req.Subject = eventbus.Change(entity, d.Portal, d.EntityID)
		return req, id, nil
	}
	return req, "", ledger.ErrNotFound
}
