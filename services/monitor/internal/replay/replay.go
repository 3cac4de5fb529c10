// Package replay republishes recorded events to their raw subject so every
// consumer sees them again: with source REPLAY, replay_of naming the
// original event and a new message id (original + "-r" + random hex), so
// JetStream's de-duplication does not drop them. Every replay is recorded in
// the ledger.
package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Store is the part of the ledger the replayer needs.
type Store interface {
	GetEvent(ctx context.Context, id string) (ledger.Event, error)
	Deliveries(ctx context.Context, eventID string) ([]ledger.Delivery, error)
	SearchEvents(ctx context.Context, f ledger.EventFilter) (ledger.EventPage, error)
	DeadLetters(ctx context.Context, f ledger.DeliveryFilter) ([]ledger.DeadLetterRow, error)
	RecordReplay(ctx context.Context, r ledger.Replay) error
}

// Publisher publishes to JetStream (eventbus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, m eventbus.Message) (*jetstream.PubAck, error)
}

var (
	_ Store     = (*ledger.Store)(nil)
	_ Publisher = (*eventbus.Publisher)(nil)
)

// ErrNotReplayable is returned for an event that cannot be rebuilt (not in
// the ledger, or recorded without a valid subject).
var ErrNotReplayable = errors.New("replay: event cannot be replayed")

// ErrLifecycle refuses a replay of an application lifecycle event. A
// replayed ONAPPUNINSTALL would uninstall a portal that was installed
// again since and delete its credentials; a replayed ONAPPINSTALL or
// ONAPPUPDATE would re-apply an install state nobody verified now. The
// portal's own install, update or uninstall is the only way to change it.
var ErrLifecycle = fmt.Errorf("%w: app lifecycle events (ONAPPINSTALL, ONAPPUPDATE, ONAPPUNINSTALL) are never replayed; install, update or uninstall the app in Bitrix24 instead", ErrNotReplayable)

// lifecycleEvents are the events ErrLifecycle refuses.
var lifecycleEvents = map[string]bool{"ONAPPINSTALL": true, "ONAPPUPDATE": true, "ONAPPUNINSTALL": true}

// Lifecycle reports whether an event type is an application lifecycle
// event, which is never replayed.
func Lifecycle(eventType string) bool { return lifecycleEvents[eventType] }

// Replayer republishes events.
type Replayer struct {
	store Store
	pub   Publisher
	dest  Destinations
	now   func() time.Time
	max   int
}

// DefaultMax is the default bound of one bulk replay. The ledger is read a
// page (ledger.MaxPage) at a time, so it is not bounded by a page: a
// backlog dead-lettered by an outage replays in one request (b24ctl runs
// the plan event by event).
const DefaultMax = 100_000

// New returns a Replayer; max bounds one bulk replay (default DefaultMax)
// and now is the clock (default time.Now).
func New(store Store, pub Publisher, max int, now func() time.Time) *Replayer {
	if max <= 0 {
		max = DefaultMax
	}
	if now == nil {
		now = time.Now
	}
	return &Replayer{store: store, pub: pub, now: now, max: max}
}

// NewID returns a replay message id for original: original + "-r" + 8 hex
// digits.
func NewID(original string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return original + "-r" + hex.EncodeToString(b[:])
}

// Envelope rebuilds the raw event e as a replay with message id id.
func Envelope(e ledger.Event, id, original string, now time.Time) *eventsv1.Envelope {
	env := &eventsv1.Envelope{
		MessageId: id, MemberId: e.Portal, Domain: e.Domain, Event: e.EventType, HandlerId: e.HandlerID,
		ReceivedAt: timestamppb.New(now), Source: eventsv1.Source_SOURCE_REPLAY, ContentType: e.ContentType,
		Body: e.Payload, EntityId: e.EntityID, Route: e.Route, ReplayOf: original, ClientEndpoint: e.ClientEndpoint,
	}
	if !e.EventTS.IsZero() {
		env.EventTs = timestamppb.New(e.EventTS)
	}
	return env
}

// One replays the event id. When consumer is set (replaying that
// consumer's dead letter) the replay's delivery at that consumer is tracked
// as pending until it reports. A consumer "dest-<name>" is an HTTP
// destination: see WithDestinations. It returns ledger.ErrNotFound for an unknown
// id and ErrNotReplayable for an event that cannot be rebuilt.
func (r *Replayer) One(ctx context.Context, id, consumer string) (ledger.Replay, error) {
	if r.dest != nil && strings.HasPrefix(consumer, DestinationPrefix) {
		return r.toDestination(ctx, id, consumer)
	}
	e, err := r.store.GetEvent(ctx, id)
	if err != nil {
		return ledger.Replay{}, err
	}
	if err := replayable(e); err != nil {
		return ledger.Replay{}, err
	}
	original := e.ID
	if e.ReplayOf != "" {
		original = e.ReplayOf
	}
	now := r.now().UTC()
	rep := ledger.Replay{ID: NewID(original), OriginalID: original, ReplayedFrom: e.ID, Consumer: consumer, RequestedAt: now,
		Status: ledger.StatusPending}
	msg, err := eventbus.RawEventMessage(Envelope(e, rep.ID, original, now), nil)
	if err != nil {
		return ledger.Replay{}, fmt.Errorf("%w: %w", ErrNotReplayable, err)
	}
	ack, err := r.pub.Publish(ctx, msg)
	if err != nil {
		return ledger.Replay{}, fmt.Errorf("replay: publish %s: %w", id, err)
	}
	rep.StreamSeq = ack.Sequence
	if err := r.store.RecordReplay(ctx, rep); err != nil {
		return rep, fmt.Errorf("replay: %s published as %s but not recorded: %w", id, rep.ID, err)
	}
	return rep, nil
}

// replayable returns ErrNotReplayable for an event that cannot be rebuilt
// and ErrLifecycle for a lifecycle event.
func replayable(e ledger.Event) error {
	if Lifecycle(e.EventType) {
		return ErrLifecycle
	}
	if !eventbus.ValidToken(e.Portal) || !eventbus.ValidToken(e.EventType) {
		return fmt.Errorf("%w: portal %q or event %q is not a subject token", ErrNotReplayable, e.Portal, e.EventType)
	}
	return nil
}

// Result is the outcome of a bulk replay.
type Result struct {
	Replayed []ledger.Replay `json:"replayed"`
	// Skipped are dead letters left alone because a replay of them is
	// already pending or done (unless Force).
	Skipped []string `json:"skipped,omitempty"`
	// Refused are lifecycle events the filter matched, which are never
	// replayed (ErrLifecycle).
	Refused []string `json:"refused,omitempty"`
	// Failed maps event ids to the error that stopped their replay.
	Failed map[string]string `json:"failed,omitempty"`
	// Truncated is true when more events matched than the limit.
	Truncated bool `json:"truncated"`
}

func (r *Replayer) limit(n int) int {
	if n <= 0 || n > r.max {
		return r.max
	}
	return n
}

// DeadLetters replays the dead letters matching f (at most limit, capped
// by the replayer's maximum), each tracked at its consumer. Dead letters
// whose newest replay is pending or done are skipped unless force.
func (r *Replayer) DeadLetters(ctx context.Context, f ledger.DeliveryFilter, limit int, force bool) (Result, error) {
	p, err := r.PlanDeadLetters(ctx, f, limit, force)
	if err != nil {
		return Result{}, err
	}
	return r.execute(ctx, p), nil
}

// Events replays the events matching f (at most limit, capped by the
// replayer's maximum).
func (r *Replayer) Events(ctx context.Context, f ledger.EventFilter, limit int) (Result, error) {
	p, err := r.PlanEvents(ctx, f, limit)
	if err != nil {
		return Result{}, err
	}
	return r.execute(ctx, p), nil
}

// execute replays every item of p.
func (r *Replayer) execute(ctx context.Context, p Plan) Result {
	res := Result{Failed: map[string]string{}, Skipped: p.Skipped, Refused: p.Refused, Truncated: p.Truncated}
	for _, it := range p.items {
		rep, err := r.One(ctx, it.eventID, it.consumer)
		if err != nil {
			res.Failed[it.eventID] = err.Error()
			continue
		}
		res.Replayed = append(res.Replayed, rep)
	}
	return res
}
