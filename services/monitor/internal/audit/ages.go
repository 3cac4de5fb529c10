package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/monitor/internal/alert"
	"github.com/nats-io/nats.go/jetstream"
)

// AgedStreams are the streams whose durable consumers are measured: the
// monitor's declaration inspects them (svcdecl.Service.Inspects).
var AgedStreams = []string{eventbus.StreamEvents, eventbus.StreamChanges, eventbus.StreamCommands,
	eventbus.StreamOutcomes, eventbus.StreamDead}

var _ alert.AgeSource = (*Auditor)(nil)

// UnfinishedAges measures, for every durable consumer of the b24hub
// streams, when its oldest unfinished message was stored: the first
// message after its ack floor that its filter selects, when it has
// anything pending or awaiting ack. For consumers of the raw stream the
// ledger's oldest pending or retrying delivery counts too (an event a
// consumer acknowledged but still retries through a replay, or a replay
// in flight). A stream that does not exist is skipped.
func (a *Auditor) UnfinishedAges(ctx context.Context) ([]alert.UnfinishedAge, error) {
	ledgerOldest, err := a.ledger.OldestUnfinished(ctx)
	if err != nil {
		return nil, err
	}
	var out []alert.UnfinishedAge
	for _, name := range AgedStreams {
		stream, err := a.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("audit: stream %s: %w", name, err)
		}
		maxAge := stream.CachedInfo().Config.MaxAge
		lister := stream.ListConsumers(ctx)
		for ci := range lister.Info() {
			if ci.Config.Durable == "" {
				continue
			}
			u := alert.UnfinishedAge{Consumer: ci.Name, Stream: name, MaxAge: maxAge}
			if ci.NumPending > 0 || ci.NumAckPending > 0 {
				if u.Oldest, err = oldestAfter(ctx, stream, ci); err != nil {
					return nil, err
				}
			}
			if at, ok := ledgerOldest[ci.Name]; ok && name == eventbus.StreamEvents && ci.Name != a.self &&
				(u.Oldest.IsZero() || at.Before(u.Oldest)) {
				u.Oldest = at
			}
			out = append(out, u)
		}
		if err := lister.Err(); err != nil {
			return nil, fmt.Errorf("audit: consumers of %s: %w", name, err)
		}
	}
	return out, nil
}

// oldestAfter returns when the first message after the consumer's ack
// floor that its filters select was stored (zero when there is none).
func oldestAfter(ctx context.Context, stream jetstream.Stream, ci *jetstream.ConsumerInfo) (time.Time, error) {
	filters := ci.Config.FilterSubjects
	if ci.Config.FilterSubject != "" {
		filters = append(filters, ci.Config.FilterSubject)
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	var oldest time.Time
	for _, f := range filters {
		m, err := stream.GetMsg(ctx, ci.AckFloor.Stream+1, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("audit: oldest message of %s: %w", ci.Name, err)
		}
		if oldest.IsZero() || m.Time.Before(oldest) {
			oldest = m.Time
		}
	}
	return oldest, nil
}
