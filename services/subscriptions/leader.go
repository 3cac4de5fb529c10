package subscriptions

import (
	"context"
	"errors"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/subscriptions/internal/offline"
	"github.com/b24hub/b24hub/services/subscriptions/internal/reconcile"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"
)

// lead runs the singleton work while this instance holds the lease: the
// lifecycle-event consumer and one loop each for subscription repair,
// offline queues, reconciliation and probes. It returns when ctx ends (the
// lease was lost or the service stops).
func (s *Service) lead(ctx context.Context) {
	s.leading.Store(true)
	s.m.leader.Record(ctx, 1)
	defer func() {
		s.leading.Store(false)
		s.m.leader.Record(context.WithoutCancel(ctx), 0)
	}()
	g, ctx := errgroup.WithContext(ctx)
	rt, err := consumer.New(s.deps.NC, consumer.WithLogger(s.log), consumer.WithMeterProvider(s.deps.MeterProvider))
	if err == nil {
		err = consumer.Register(rt, LifecycleSpec(), consumer.DecodeEnvelope, consumer.Handler[*eventsEnvelope](s.lifecycle()))
	}
	if err != nil {
		s.log.ErrorContext(ctx, "lifecycle consumer not started", "error", err)
	} else {
		g.Go(func() error {
			if err := rt.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "lifecycle consumer stopped", "error", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		s.loop(ctx, s.cfg.SyncInterval, s.kickSync, s.syncAll, func(ctx context.Context, id string) {
			s.syncPortal(ctx, id, true)
		})
		return nil
	})
	g.Go(func() error {
		s.loop(ctx, s.cfg.OfflinePollInterval, s.kickDrain, s.drainAll, s.drainPortal)
		return nil
	})
	g.Go(func() error { s.loop(ctx, s.cfg.ReconcileInterval, nil, s.reconcileAll, nil); return nil })
	if s.cfg.ProbeInterval > 0 {
		g.Go(func() error { s.loop(ctx, s.cfg.ProbeInterval, nil, s.probeAll, nil); return nil })
	}
	g.Go(func() error { s.loop(ctx, auditPruneInterval, nil, s.pruneAudit, nil); return nil })
	_ = g.Wait()
}

// AuditRetention is how long install decisions stay in the audit table
// (each portal's latest accepted install and uninstall stay for good).
const AuditRetention = 90 * 24 * time.Hour

// auditPruneInterval is how often the leader prunes the audit table.
const auditPruneInterval = 6 * time.Hour

func (s *Service) pruneAudit(ctx context.Context) {
	n, err := s.store.PruneInstalls(ctx, time.Now().Add(-AuditRetention))
	if err != nil {
		s.log.WarnContext(ctx, "install audit not pruned", "error", err)
		return
	}
	if n > 0 {
		s.log.InfoContext(ctx, "install audit pruned", "rows", n, "older_than", AuditRetention.String())
	}
}

// loop runs all once at start and then every interval, and one for every
// member id kicked, until ctx ends.
func (s *Service) loop(ctx context.Context, interval time.Duration, kicks <-chan string,
	all func(context.Context), one func(context.Context, string)) {
	all(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			all(ctx)
		case id := <-kicks:
			if one != nil {
				one(ctx, id)
			}
		}
	}
}

func (s *Service) syncAll(ctx context.Context) {
	s.reloadDesired(ctx)
	for _, id := range s.appPortals(ctx) {
		if ctx.Err() != nil {
			return
		}
		s.syncPortal(ctx, id, true)
	}
}

func (s *Service) drainAll(ctx context.Context) {
	for _, id := range s.appPortals(ctx) {
		if ctx.Err() != nil {
			return
		}
		if s.desired().For(id).Mode.Offline() {
			s.drainPortal(ctx, id)
		}
	}
}

// drainPortal empties one portal's offline queue into the raw stream.
func (s *Service) drainPortal(ctx context.Context, memberID string) {
	if !s.desired().For(memberID).Mode.Offline() {
		return
	}
	p, ok := s.deps.Portals.Lookup(memberID)
	if !ok || !p.Active {
		return
	}
	c, err := s.clients.ClientFor(ctx, memberID)
	if err == nil {
		var st offline.Stats
		st, err = s.pump.Drain(ctx, offline.Portal{MemberID: memberID, Domain: p.Domain, ClientEndpoint: p.ClientEndpoint}, c)
		s.m.offline.Add(ctx, int64(st.Published), metric.WithAttributes(attribute.String("member_id", memberID), attribute.String("result", "published")))
		if st.Errored > 0 {
			s.m.offline.Add(ctx, int64(st.Errored), metric.WithAttributes(attribute.String("member_id", memberID), attribute.String("result", "errored")))
		}
		if st.Published > 0 || st.Errored > 0 {
			s.log.InfoContext(ctx, "offline events drained", "member_id", memberID, "published", st.Published, "errored", st.Errored)
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.m.loopError(ctx, "offline", memberID)
		s.log.WarnContext(ctx, "offline drain failed", "member_id", memberID, "error", err)
	}
}

func (s *Service) reconcileAll(ctx context.Context) {
	for _, p := range s.restPortals(ctx) {
		for _, entity := range s.desired().For(p.MemberID).Reconcile {
			if ctx.Err() != nil {
				return
			}
			s.reconcilePortal(ctx, p, entity)
		}
	}
}

func (s *Service) reconcilePortal(ctx context.Context, p portals.Portal, entity string) {
	c, err := s.clients.ClientFor(ctx, p.MemberID)
	if err == nil {
		var st reconcile.Stats
		st, err = s.recon.Run(ctx, reconcile.Portal{MemberID: p.MemberID, Domain: p.Domain, ClientEndpoint: p.ClientEndpoint}, c, entity)
		s.m.reconciled.Add(ctx, int64(st.Published), metric.WithAttributes(attribute.String("member_id", p.MemberID), attribute.String("entity", entity)))
		if st.Published > 0 {
			s.log.InfoContext(ctx, "reconciled", "member_id", p.MemberID, "entity", entity, "published", st.Published, "watermark", st.Watermark)
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.m.loopError(ctx, "reconcile", p.MemberID)
		s.log.WarnContext(ctx, "reconciliation failed", "member_id", p.MemberID, "entity", entity, "error", err)
	}
}

func (s *Service) probeAll(ctx context.Context) {
	for _, id := range s.appPortals(ctx) {
		if ctx.Err() != nil || !s.desired().For(id).ProbeEnabled() {
			continue
		}
		c, err := s.clients.ClientFor(ctx, id)
		if err == nil {
			_, err = s.prober.Send(ctx, id, c)
		}
		result := "sent"
		if err != nil {
			result = "failed"
			s.m.loopError(ctx, "probe", id)
			s.log.WarnContext(ctx, "probe failed", "member_id", id, "error", err)
		}
		s.m.probes.Add(ctx, 1, metric.WithAttributes(attribute.String("member_id", id), attribute.String("result", result)))
	}
}
