package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
)

// instrumentation is the OTel scope name of the runtime's spans and metrics.
const instrumentation = "github.com/b24hub/b24hub/libs/consumer"

// DefaultDrainTimeout bounds how long Run waits, after its context ends, for
// handlers already running to finish before their contexts are cancelled.
const DefaultDrainTimeout = 20 * time.Second

// Runtime runs registered consumers: it provisions their durable consumers,
// pulls messages, calls handlers, settles every message and drains on
// shutdown. Build it with [New], add consumers with [Register] or
// [RegisterBatch], then call [Runtime.Run] once.
type Runtime struct {
	nc           *nats.Conn
	js           jetstream.JetStream
	pub          *eventbus.Publisher
	log          *slog.Logger
	tracer       trace.Tracer
	tp           trace.TracerProvider
	meter        metric.Meter
	drainTimeout time.Duration

	mu      sync.Mutex
	regs    []registration
	running bool
}

// Option configures a Runtime.
type Option func(*Runtime) error

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(r *Runtime) error {
		if l == nil {
			return errors.New("nil logger")
		}
		r.log = l
		return nil
	}
}

// WithTracerProvider sets the tracer provider for the runtime's spans and
// the publisher of outcomes and dead letters (default: the global one).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(r *Runtime) error {
		if tp == nil {
			return errors.New("nil tracer provider")
		}
		r.tp = tp
		return nil
	}
}

// WithMeterProvider sets the meter provider (default: the global one).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(r *Runtime) error {
		if mp == nil {
			return errors.New("nil meter provider")
		}
		r.meter = mp.Meter(instrumentation)
		return nil
	}
}

// WithDrainTimeout sets how long Run lets running handlers finish after its
// context ends (default DefaultDrainTimeout). Messages not finished by then
// are nak'ed at once so another replica takes them.
func WithDrainTimeout(d time.Duration) Option {
	return func(r *Runtime) error {
		if d <= 0 {
			return fmt.Errorf("drain timeout %s must be positive", d)
		}
		r.drainTimeout = d
		return nil
	}
}

// New returns a Runtime on nc. It returns an error for an invalid option.
func New(nc *nats.Conn, opts ...Option) (*Runtime, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("consumer: jetstream: %w", err)
	}
	r := &Runtime{nc: nc, js: js, log: slog.Default(), tp: otel.GetTracerProvider(), drainTimeout: DefaultDrainTimeout}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, fmt.Errorf("consumer: %w", err)
		}
	}
	if r.meter == nil {
		r.meter = otel.GetMeterProvider().Meter(instrumentation)
	}
	r.tracer = r.tp.Tracer(instrumentation)
	r.pub = eventbus.NewPublisher(js, eventbus.WithTracerProvider(r.tp))
	return r, nil
}

// registration is one registered consumer, type-erased.
type registration interface {
	spec() Spec
	// config is the JetStream consumer provisioned for it.
	config() jetstream.ConsumerConfig
	run(ctx, hardStop context.Context, cons jetstream.Consumer) error
}

// Register adds a consumer whose handler takes one message at a time. It
// returns an error when spec is invalid, its durable name is already
// registered, or Run has started.
func Register[T any](r *Runtime, spec Spec, dec Decoder[T], h Handler[T]) error {
	if h == nil || dec == nil {
		return errors.New("consumer: nil handler or decoder")
	}
	spec = spec.WithDefaults()
	spec.BatchSize, spec.BatchWindow = 1, 0
	return r.add(spec, func(m *metrics) registration {
		return &pipeline[T]{rt: r, sp: spec, dec: dec, h: single[T]{h}, m: m}
	})
}

// RegisterBatch adds a consumer whose handler takes batches of one portal's
// messages (see [BatchHandler]). Same errors as [Register].
func RegisterBatch[T any](r *Runtime, spec Spec, dec Decoder[T], h BatchHandler[T]) error {
	if h == nil || dec == nil {
		return errors.New("consumer: nil handler or decoder")
	}
	spec = spec.withBatchDefaults().WithDefaults()
	return r.add(spec, func(m *metrics) registration {
		return &pipeline[T]{rt: r, sp: spec, dec: dec, h: h, m: m}
	})
}

func (r *Runtime) add(spec Spec, build func(*metrics) registration) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return errors.New("consumer: register after Run")
	}
	for _, g := range r.regs {
		if g.spec().Durable == spec.Durable {
			return fmt.Errorf("consumer: durable %q registered twice", spec.Durable)
		}
	}
	m, err := newMetrics(r.meter, spec.Durable)
	if err != nil {
		return fmt.Errorf("consumer: metrics: %w", err)
	}
	r.regs = append(r.regs, build(m))
	return nil
}

// Specs returns the registered specs with defaults applied, e.g. for
// documentation or a topology dump.
func (r *Runtime) Specs() []Spec {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Spec, len(r.regs))
	for i, g := range r.regs {
		out[i] = g.spec()
	}
	return out
}

// Provision creates or updates the durable consumer of every registered
// Spec. Run calls it; it is exported for tools that only apply topology. The
// streams must exist (eventbus.Provision owns them).
func (r *Runtime) Provision(ctx context.Context) error {
	_, err := r.provision(ctx)
	return err
}

func (r *Runtime) provision(ctx context.Context) ([]jetstream.Consumer, error) {
	r.mu.Lock()
	regs := append([]registration(nil), r.regs...)
	r.mu.Unlock()
	out := make([]jetstream.Consumer, len(regs))
	for i, g := range regs {
		sp := g.spec()
		c, err := r.js.CreateOrUpdateConsumer(ctx, sp.Stream, g.config())
		if err != nil {
			return nil, fmt.Errorf("consumer: provision %s on %s: %w", sp.Durable, sp.Stream, err)
		}
		out[i] = c
	}
	return out, nil
}

// Run provisions every registered consumer, then processes messages until
// ctx ends. It then drains: it stops pulling, finishes the messages already
// received (handlers get up to the drain timeout), settles them, and
// returns. It returns nil after a clean drain, or the first error that
// stopped a consumer (provisioning, a closed connection). Run may be called
// once.
func (r *Runtime) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("consumer: Run called twice")
	}
	r.running = true
	regs := append([]registration(nil), r.regs...)
	r.mu.Unlock()
	if len(regs) == 0 {
		return errors.New("consumer: nothing registered")
	}
	conss, err := r.provision(ctx)
	if err != nil {
		return err
	}
	// hardStop ends handler contexts once the drain timeout has passed.
	hardStop, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		<-ctx.Done()
		t := time.NewTimer(r.drainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			stop()
		case <-hardStop.Done():
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	for i, reg := range regs {
		g.Go(func() error { return reg.run(gctx, hardStop, conss[i]) })
	}
	return g.Wait()
}

// Ready reports whether the runtime can work: the connection is up and
// every registered durable consumer exists. Use it for /readyz.
func (r *Runtime) Ready(ctx context.Context) error {
	if st := r.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("consumer: nats %s", st)
	}
	for _, sp := range r.Specs() {
		if _, err := r.js.Consumer(ctx, sp.Stream, sp.Durable); err != nil {
			return fmt.Errorf("consumer: %s: %w", sp.Durable, err)
		}
	}
	return nil
}
