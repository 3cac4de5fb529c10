package subscriptions

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// instrumentation is the OTel scope of the service's metrics.
const instrumentation = "github.com/b24hub/b24hub/services/subscriptions"

// metrics are the service's instruments. Exported to Prometheus with the
// b24hub_ prefix, e.g. b24hub_subscriptions_drift.
type metrics struct {
	drift      metric.Int64Gauge
	repairs    metric.Int64Counter
	syncErrors metric.Int64Counter
	offline    metric.Int64Counter
	reconciled metric.Int64Counter
	loopErrors metric.Int64Counter
	probes     metric.Int64Counter
	probeRTT   metric.Float64Histogram
	installs   metric.Int64Counter
	leader     metric.Int64Gauge
}

func newMetrics(m metric.Meter) (*metrics, error) {
	var errs [10]error
	x := &metrics{}
	x.drift, errs[0] = m.Int64Gauge("subscriptions.drift",
		metric.WithDescription("Event bindings out of place (missing or undeclared) at the last check, per portal"))
	x.repairs, errs[1] = m.Int64Counter("subscriptions.repairs",
		metric.WithDescription("Event bindings added or removed to repair drift"))
	x.syncErrors, errs[2] = m.Int64Counter("subscriptions.sync.errors",
		metric.WithDescription("Subscription checks or repairs that failed"))
	x.offline, errs[3] = m.Int64Counter("subscriptions.offline.events",
		metric.WithDescription("Offline-queue records handled, by result (published, errored)"))
	x.reconciled, errs[4] = m.Int64Counter("subscriptions.reconcile.events",
		metric.WithDescription("Changed entities published by polling reconciliation"))
	x.loopErrors, errs[5] = m.Int64Counter("subscriptions.loop.errors",
		metric.WithDescription("Failed runs of a background loop (offline, reconcile, probe), per portal"))
	x.probes, errs[6] = m.Int64Counter("subscriptions.probes",
		metric.WithDescription("Synthetic probes by result (sent, failed, answered)"))
	x.probeRTT, errs[7] = m.Float64Histogram("subscriptions.probe.rtt", metric.WithUnit("s"),
		metric.WithDescription("Time from event.test to the ONAPPTEST in the raw stream"),
		metric.WithExplicitBucketBoundaries(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300))
	x.installs, errs[8] = m.Int64Counter("subscriptions.installs",
		metric.WithDescription("ONAPPINSTALL verifications by result (accepted, refused)"))
	x.leader, errs[9] = m.Int64Gauge("subscriptions.leader",
		metric.WithDescription("1 while this instance holds the singleton lease"))
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return x, nil
}

func member(id string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("member_id", id))
}

func (m *metrics) loopError(ctx context.Context, loop, memberID string) {
	m.loopErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("loop", loop), attribute.String("member_id", memberID)))
}
