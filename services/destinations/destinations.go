// Package destinations is the destinations service: it delivers raw events
// and domain changes to HTTP endpoints that outside teams run (PHP, Python,
// Node…), declared by the operator in a hot-reloaded file. Each request is
// signed per the Standard Webhooks specification, retried with backoff and
// jitter, dead-lettered when it cannot succeed, and reported as an outcome
// per attempt like any internal consumer's, under the durable name
// "dest-<name>". See docs/destinations.md.
//
// The service is run by cmd/destinations.
package destinations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/destinations/internal/delivery"
	"github.com/b24hub/b24hub/services/destinations/internal/destfile"
	"github.com/b24hub/b24hub/services/destinations/internal/webhook"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Deps are what the service needs from its host process.
type Deps struct {
	// JS is the JetStream context of the service's connection. Required.
	JS jetstream.JetStream
	// Logger is required.
	Logger *slog.Logger
	// Sender overrides the HTTP sender (tests trust their own CA). Optional.
	Sender *webhook.Sender
	// NATS answers the control requests (eventbus.ControlDestinationsList
	// and ControlDestinationsReplay). Optional: without it, none.
	NATS *nats.Conn
	// MeterProvider defaults to the global one.
	MeterProvider metric.MeterProvider
}

// Service delivers the declared destinations.
type Service struct {
	cfg    Config
	deps   Deps
	pub    *eventbus.Publisher
	sender *webhook.Sender

	paused metric.Int64Gauge

	mu      sync.Mutex
	running map[string]*running
	wg      sync.WaitGroup
}

type running struct {
	d      destfile.Destination
	runner *delivery.Runner
	cancel context.CancelFunc
	done   chan struct{}
}

// New wires the service; nothing is contacted until Run.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.JS == nil || deps.Logger == nil {
		return nil, errors.New("destinations: JS and Logger are required")
	}
	s := deps.Sender
	if s == nil {
		s = webhook.NewSender(webhook.SenderOptions{AllowedNets: cfg.AllowNets})
	}
	if deps.MeterProvider == nil {
		deps.MeterProvider = otel.GetMeterProvider()
	}
	paused, err := deps.MeterProvider.Meter(instrumentation).Int64Gauge("destinations.paused",
		metric.WithDescription("1 while a destination's circuit breaker holds it paused or probing (its endpoint keeps failing), 0 while it delivers"))
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, deps: deps, pub: eventbus.NewPublisher(deps.JS), sender: s, paused: paused, running: map[string]*running{}}, nil
}

// instrumentation is the OTel scope of the service's metrics, exported to
// Prometheus with the b24hub_ prefix (b24hub_destinations_paused).
const instrumentation = "github.com/b24hub/b24hub/services/destinations"

// Run watches the destinations file and delivers each destination until
// ctx ends, then stops them all (undelivered messages go back to the
// stream in order). Without a file it idles: the local stack runs it with
// no destinations.
func (s *Service) Run(ctx context.Context) error {
	if s.deps.NATS != nil {
		subs, err := s.subscribeControl(ctx)
		if err != nil {
			return err
		}
		defer func() {
			for _, sub := range subs {
				_ = sub.Drain()
			}
		}()
	}
	if s.cfg.File == "" {
		s.deps.Logger.InfoContext(ctx, "no destinations file (B24HUB_DESTINATIONS_FILE); nothing to deliver")
		<-ctx.Done()
		return nil
	}
	destfile.Watch(ctx, s.cfg.File, s.cfg.Policy, s.cfg.ReloadInterval, s.deps.Logger, func(ds []destfile.Destination) { s.apply(ctx, ds) })
	// ctx has ended, and with it every destination's context.
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(s.cfg.DrainTimeout):
		return fmt.Errorf("destinations: not stopped within %s (B24HUB_SHUTDOWN_TIMEOUT)", s.cfg.DrainTimeout)
	}
}

// apply stops destinations that were removed or changed and starts those
// that are new or changed; unchanged ones keep delivering untouched. A
// removed destination's durable stays, so declaring it again resumes
// where it stopped.
func (s *Service) apply(ctx context.Context, ds []destfile.Destination) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]destfile.Destination{}
	for _, d := range ds {
		want[d.Name] = d
	}
	for name, r := range s.running {
		if d, ok := want[name]; ok && d.Same(r.d) {
			continue
		}
		r.cancel()
		<-r.done
		delete(s.running, name)
		s.paused.Record(context.WithoutCancel(ctx), 0, metric.WithAttributes(attribute.String("destination", name)))
	}
	for name, d := range want {
		if _, ok := s.running[name]; ok || ctx.Err() != nil {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		o := s.cfg.Delivery
		attrs := metric.WithAttributes(attribute.String("destination", d.Name))
		o.OnState = func(st delivery.State) {
			v := int64(0)
			if st != delivery.StateDelivering {
				v = 1
				s.deps.Logger.WarnContext(ctx, "destination circuit open", "destination", d.Name, "state", string(st))
			}
			s.paused.Record(context.WithoutCancel(ctx), v, attrs)
		}
		o.OnState(delivery.StateDelivering)
		runner := delivery.NewRunner(d, s.deps.JS, s.pub, s.sender, s.deps.Logger, o)
		r := &running{d: d, runner: runner, cancel: cancel, done: make(chan struct{})}
		s.running[name] = r
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(r.done)
			for rctx.Err() == nil {
				if err := runner.Run(rctx); err != nil {
					// The stream may not exist yet (topology not applied).
					s.deps.Logger.ErrorContext(rctx, "destination stopped; restarting", "destination", d.Name, "error", err)
					select {
					case <-rctx.Done():
					case <-time.After(5 * time.Second):
					}
				}
			}
		}()
	}
}

// Destinations names the destinations being delivered.
func (s *Service) Destinations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.running))
	for n := range s.running {
		out = append(out, n)
	}
	return out
}

// Ready reports whether the streams destinations read exist.
func (s *Service) Ready(ctx context.Context) error {
	return eventbus.CheckStreams(ctx, s.deps.JS, eventbus.StreamEvents, eventbus.StreamChanges)
}
