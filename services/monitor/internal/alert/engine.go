package alert

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Source is the part of the ledger rules read.
type Source interface {
	LastSeen(ctx context.Context) ([]ledger.LastSeen, error)
	OutcomeCounts(ctx context.Context, from, to time.Time) ([]ledger.OutcomeCount, error)
}

// Portals is the live portal registry the evaluator consults.
type Portals interface {
	// Watched reports whether memberID is registered and not uninstalled.
	Watched(memberID string) bool
}

// AgeSource measures the oldest unfinished event of every durable
// consumer (retention rules and the age gauge).
type AgeSource interface {
	UnfinishedAges(ctx context.Context) ([]UnfinishedAge, error)
}

// StateStore persists alert state.
type StateStore interface {
	List(ctx context.Context, firingOnly bool, limit int) ([]Alert, error)
	Save(ctx context.Context, alerts []Alert) error
}

var (
	_ Source     = (*ledger.Store)(nil)
	_ StateStore = (*Store)(nil)
)

// Engine evaluates rules periodically while it holds the lease, persists
// transitions and notifies sinks. Every replica exports the persisted state
// as gauges, whether it holds the lease or not.
type Engine struct {
	rules Rules
	src   Source
	state StateStore
	sinks []Sink
	lease Lease
	live  Portals
	ages  AgeSource
	now   func() time.Time
	since time.Time
	log   *slog.Logger

	mu     sync.Mutex
	alerts []Alert // last state read, for the gauges
	leader bool
	// unfinished is the last measurement of AgeSource, for the rules and
	// the gauges.
	unfinished []UnfinishedAge
}

// EngineConfig wires an Engine. Every field but Portals, Now and Meter is
// required.
type EngineConfig struct {
	Rules Rules
	Src   Source
	State StateStore
	Sinks []Sink
	Lease Lease
	// Portals is the live registry: portal-targeted rules watch only the
	// portals it reports watched. Nil watches every portal the ledger has
	// seen (and every portal a rule names).
	Portals Portals
	// Ages measures the oldest unfinished event per consumer, on every
	// replica and every evaluation period. Nil: retention rules observe
	// nothing and the age gauge is not exported.
	Ages AgeSource
	// Now is the clock; default time.Now. Tests inject one to simulate
	// business hours.
	Now func() time.Time
	// Meter registers the gauges; nil registers none.
	Meter metric.Meter
	Log   *slog.Logger
}

// NewEngine returns an Engine and registers its gauges:
// monitor_alert_firing{rule,target} (1 firing, 0 resolved) for every known
// alert, monitor_alert_rule_firing{rule} (number of firing instances)
// for every configured rule and, with an AgeSource,
// oldest_unfinished_event_age_seconds{consumer,stream} and
// stream_max_age_seconds{stream}.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{rules: cfg.Rules, src: cfg.Src, state: cfg.State, sinks: cfg.Sinks, lease: cfg.Lease,
		live: cfg.Portals, ages: cfg.Ages, now: cfg.Now, log: cfg.Log}
	e.since = e.now()
	if cfg.Meter != nil {
		if err := e.registerGauges(cfg.Meter); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *Engine) registerGauges(m metric.Meter) error {
	firing, err := m.Int64ObservableGauge("monitor_alert_firing",
		metric.WithDescription("1 while the alert (rule, target) is firing, 0 once resolved"))
	if err != nil {
		return err
	}
	perRule, err := m.Int64ObservableGauge("monitor_alert_rule_firing",
		metric.WithDescription("Number of firing instances of each configured alert rule"))
	if err != nil {
		return err
	}
	leader, err := m.Int64ObservableGauge("monitor_alert_leader",
		metric.WithDescription("1 when this replica holds the evaluator lease"))
	if err != nil {
		return err
	}
	age, err := m.Float64ObservableGauge("oldest_unfinished_event_age_seconds",
		metric.WithDescription("Age of the oldest event not finished at a durable consumer (unacknowledged, or pending or retrying in the ledger); 0 when none"))
	if err != nil {
		return err
	}
	maxAge, err := m.Float64ObservableGauge("stream_max_age_seconds",
		metric.WithDescription("Retention (max age) of each stream a durable consumer reads; 0 means unlimited"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := e.now()
		e.mu.Lock()
		defer e.mu.Unlock()
		counts := map[string]int64{}
		for _, r := range e.rules.Rules {
			counts[r.Name] = 0
		}
		for _, a := range e.alerts {
			v := int64(0)
			if a.State == StateFiring {
				v = 1
				counts[a.Rule]++
			}
			o.ObserveInt64(firing, v, metric.WithAttributes(attribute.String("rule", a.Rule), attribute.String("target", a.Target)))
		}
		for rule, n := range counts {
			o.ObserveInt64(perRule, n, metric.WithAttributes(attribute.String("rule", rule)))
		}
		l := int64(0)
		if e.leader {
			l = 1
		}
		o.ObserveInt64(leader, l)
		streams := map[string]time.Duration{}
		for _, u := range e.unfinished {
			o.ObserveFloat64(age, u.Age(now).Seconds(), metric.WithAttributes(attribute.String("consumer", u.Consumer), attribute.String("stream", u.Stream)))
			streams[u.Stream] = u.MaxAge
		}
		for st, d := range streams {
			o.ObserveFloat64(maxAge, d.Seconds(), metric.WithAttributes(attribute.String("stream", st)))
		}
		return nil
	}, firing, perRule, leader, age, maxAge)
	return err
}

// Rules returns the rules in force.
func (e *Engine) Rules() Rules { return e.rules }

// Run evaluates every Rules.EvaluateEvery until ctx ends, then releases
// the lease. Evaluation errors are logged, never fatal.
func (e *Engine) Run(ctx context.Context) error {
	defer e.lease.Release(context.WithoutCancel(ctx))
	t := time.NewTicker(time.Duration(e.rules.EvaluateEvery))
	defer t.Stop()
	for {
		if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "alert evaluation failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick runs one evaluation if this replica holds the lease, and refreshes
// the gauges from the stored state either way.
func (e *Engine) Tick(ctx context.Context) error {
	if e.ages != nil {
		// Measured on every replica, so each exports the gauge; on failure
		// the last measurement stands (a firing alert is not resolved by
		// a blip of NATS).
		if u, err := e.ages.UnfinishedAges(ctx); err != nil {
			e.log.WarnContext(ctx, "measuring unfinished events failed", "error", err)
		} else {
			e.mu.Lock()
			e.unfinished = u
			e.mu.Unlock()
		}
	}
	leader := e.lease.Hold(ctx)
	var err error
	if leader {
		err = e.evaluate(ctx)
	}
	alerts, lerr := e.state.List(ctx, false, 0)
	e.mu.Lock()
	e.leader = leader
	if lerr == nil {
		e.alerts = alerts
	}
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return lerr
}

func (e *Engine) evaluate(ctx context.Context) error {
	now := e.now()
	in := Input{Now: now, Since: e.since, Counts: map[time.Duration][]ledger.OutcomeCount{}}
	if e.live != nil {
		in.Watched = e.live.Watched
	}
	e.mu.Lock()
	in.Unfinished = e.unfinished
	e.mu.Unlock()
	var err error
	if in.LastSeen, err = e.src.LastSeen(ctx); err != nil {
		return err
	}
	for _, w := range e.rules.Windows() {
		if in.Counts[w], err = e.src.OutcomeCounts(ctx, now.Add(-w), now.Add(time.Minute)); err != nil {
			return err
		}
	}
	prev, err := e.state.List(ctx, false, 10000)
	if err != nil {
		return err
	}
	byKey := make(map[string]*Alert, len(prev))
	for i := range prev {
		byKey[prev[i].Key] = &prev[i]
	}
	rules := map[string]bool{}
	for _, r := range e.rules.Rules {
		rules[r.Name] = true
	}
	observed := map[string]bool{}
	var changed []Alert
	for _, o := range Evaluate(e.rules, in) {
		observed[o.Key] = true
		if next, store := Transition(byKey[o.Key], o, now); store {
			changed = append(changed, next)
		}
	}
	// A firing alert that is no longer observed (its consumer went quiet,
	// its rule was removed, its portal is gone) is resolved.
	for _, a := range prev {
		if a.State == StateFiring && !observed[a.Key] {
			msg := "condition no longer observed"
			switch {
			case !rules[a.Rule]:
				msg = "rule removed from the configuration"
			case TargetsPortal(a.Kind) && !in.watched(a.Target):
				msg = "portal " + a.Target + " is no longer registered (uninstalled, or removed from the portals file or the B24_PORTALS bucket): not watched"
			}
			changed = append(changed, resolve(a, msg, 0, now))
		}
	}
	if err := e.state.Save(ctx, changed); err != nil {
		return err
	}
	return e.notify(ctx, changed, prev)
}

// notify sends every alert whose current state a sink has not yet
// received: the transitions just made and earlier ones whose delivery
// failed. A firing alert is sent once per sink, however long it fires.
func (e *Engine) notify(ctx context.Context, changed, prev []Alert) error {
	current := map[string]Alert{}
	for _, a := range prev {
		current[a.Key] = a
	}
	for _, a := range changed {
		current[a.Key] = a
	}
	var (
		updated []Alert
		failed  error
	)
	for _, a := range current {
		dirty := false
		for _, s := range e.sinks {
			if a.Notified[s.Name()] == a.State {
				continue
			}
			// An alert that resolved before a sink ever heard it fire is
			// not worth announcing to that sink.
			if a.State == StateResolved && a.Notified[s.Name()] == "" {
				a.Notified[s.Name()] = a.State
				dirty = true
				continue
			}
			if err := s.Send(ctx, a); err != nil {
				failed = fmt.Errorf("alert %s: %w", a.Key, err)
				e.log.WarnContext(ctx, "alert notification failed", "alert", a.Key, "sink", s.Name(), "error", err)
				continue
			}
			if a.Notified == nil {
				a.Notified = map[string]string{}
			}
			a.Notified[s.Name()] = a.State
			dirty = true
		}
		if dirty {
			updated = append(updated, a)
		}
	}
	if err := e.state.Save(ctx, updated); err != nil {
		return err
	}
	return failed
}
