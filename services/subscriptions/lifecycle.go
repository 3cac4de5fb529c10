package subscriptions

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/subscriptions/internal/desired"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

type eventsEnvelope = eventsv1.Envelope

// LifecycleDurable is the durable consumer of the lifecycle events. It is
// PUBLIC API: renaming it makes a new consumer replay every lifecycle event
// the stream still holds.
const LifecycleDurable = "subscriptions"

// LifecycleEvents are the raw events the service reacts to.
var LifecycleEvents = []string{"ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL", desired.OfflineNotify, "ONAPPTEST"}

// LifecycleSpec is the consumer definition of the lifecycle events.
func LifecycleSpec() consumer.Spec {
	return consumer.Spec{
		Durable:        LifecycleDurable,
		Description:    "subscriptions: app install/update/uninstall, offline-queue notifications, probe answers",
		FilterSubjects: eventbus.RawEventFilter(LifecycleEvents...),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		Backoff:        []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute},
		Concurrency:    2,
	}
}

// lifecycle handles one lifecycle event on the leader.
func (s *Service) lifecycle() consumer.HandlerFunc[*eventsv1.Envelope] {
	return func(ctx context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
		env := m.Payload
		id := env.GetMemberId()
		switch env.GetEvent() {
		case "ONAPPINSTALL", "ONAPPUPDATE":
			// Bitrix24 drops every handler of an app on update and
			// reinstall (§1.2): bind them again now, not at the next tick,
			// with the runtime's retries if the portal does not answer.
			p, ok := s.deps.Portals.Lookup(id)
			switch {
			case !ok:
				// The install record is written before the ingress
				// publishes the event, but the registry follows the bucket
				// asynchronously.
				return consumer.RetryAfter(2*time.Second, fmt.Errorf("portal %s not in the registry yet", id))
			case !p.Active:
				return consumer.Skip("portal no longer active")
			}
			s.clients.Forget(id)
			plan := s.syncPortal(ctx, id, true)
			if plan.Error != "" {
				return fmt.Errorf("re-bind after %s: %s", env.GetEvent(), plan.Error)
			}
			if len(plan.Failed) > 0 {
				return fmt.Errorf("re-bind after %s: %s", env.GetEvent(), strings.Join(plan.Failed, "; "))
			}
		case "ONAPPUNINSTALL":
			// A replay of an uninstall is inert (the monitor refuses them
			// too): uninstalling is the portal's decision, made again in
			// Bitrix24, never an operator's replay of history.
			if env.GetSource() == eventsv1.Source_SOURCE_REPLAY {
				return consumer.Skip("a replayed uninstall changes nothing; uninstall the app in Bitrix24")
			}
			// An uninstall that happened before the latest accepted install
			// must not deactivate the reinstalled portal: one received
			// before it, or one received after it (late, from the offline
			// queue or a redelivery) but raised before it.
			if at, ok, err := s.store.LastAccepted(ctx, id, "ONAPPINSTALL"); err != nil {
				return err
			} else if ok && raisedBefore(env, at) {
				return consumer.Skip("uninstall older than the latest install")
			}
			s.clients.Forget(id)
			return s.install.Uninstall(ctx, id)
		case desired.OfflineNotify:
			s.kick(s.kickDrain, id)
		case "ONAPPTEST":
			rtt, ok, err := s.prober.Received(ctx, env)
			if err != nil {
				return err
			}
			if !ok {
				return consumer.Skip("not a probe of this service")
			}
			s.m.probeRTT.Record(ctx, rtt.Seconds(), metric.WithAttributes(attribute.String("member_id", id)))
			s.m.probes.Add(ctx, 1, metric.WithAttributes(attribute.String("member_id", id), attribute.String("result", "answered")))
		}
		return nil
	}
}

// raisedBefore reports whether the event happened before t: it reached
// the ingress before t, or the portal's ts (whole seconds, so with a
// second's margin) is before t.
func raisedBefore(env *eventsv1.Envelope, t time.Time) bool {
	if env.GetReceivedAt().AsTime().Before(t) {
		return true
	}
	ts := env.GetEventTs()
	return ts != nil && !ts.AsTime().IsZero() && ts.AsTime().Add(time.Second).Before(t)
}
