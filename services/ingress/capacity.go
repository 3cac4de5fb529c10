package ingress

import (
	"context"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"go.opentelemetry.io/otel/metric"
)

// observeEventsStream exports the raw event stream's size and its cap,
// read from JetStream once per scrape, so an alert fires at a fraction of
// capacity (deploy/monitoring: B24HubEventsStreamNearlyFull) before the
// cap starts dropping the oldest events. The ingress reports it because it
// is the stream's one writer and may already read its state (readiness);
// every replica reports the same values, and the rules take the max.
func (s *Service) observeEventsStream(meter metric.Meter) error {
	size, err := meter.Int64ObservableGauge("ingress.events_stream.size",
		metric.WithDescription("Bytes stored in the raw event stream B24_EVENTS"), metric.WithUnit("By"))
	if err != nil {
		return err
	}
	limit, err := meter.Int64ObservableGauge("ingress.events_stream.limit",
		metric.WithDescription("The raw event stream's size cap (MaxBytes; past it the oldest events are dropped), or -1 when unbounded"), metric.WithUnit("By"))
	if err != nil {
		return err
	}
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		// A scrape must not hang on a slow broker; without an answer the
		// series are absent for this scrape, not wrong.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := s.js.Stream(ctx, eventbus.StreamEvents)
		if err != nil {
			return nil
		}
		info := st.CachedInfo()
		o.ObserveInt64(size, int64(info.State.Bytes))
		o.ObserveInt64(limit, info.Config.MaxBytes)
		return nil
	}, size, limit)
	return err
}
