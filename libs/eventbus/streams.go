package eventbus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names. They are public API: tools and Kubernetes jobs refer to them.
const (
	StreamEvents   = "B24_EVENTS"
	StreamChanges  = "B24_CHANGES"
	StreamCommands = "B24_COMMANDS"
	StreamOutcomes = "B24_OUTCOMES"
	StreamDead     = "B24_DEAD"
)

// StreamOptions tune the stream definitions per environment. Zero fields take
// the defaults noted on each field.
type StreamOptions struct {
	// Replicas per stream. Optional, default 1; use 3 in production clusters.
	Replicas int
	// EventsMaxAge is how long raw events are kept (limits retention).
	// Optional, default 7 days.
	EventsMaxAge time.Duration
	// DuplicateWindow is the JetStream de-duplication window of the raw
	// stream. Optional, default 10 minutes.
	DuplicateWindow time.Duration
	// Storage is the storage kind. Optional, default file storage.
	Storage jetstream.StorageType
	// EventsMaxBytes caps the raw event stream's size. Optional, default
	// DefaultEventsMaxBytes. Past it the oldest events are discarded
	// (DiscardOld), never the new ones: Bitrix24 does not resend a refused
	// event, and the oldest ones have normally been processed long ago. One
	// portal cannot fill the stream on its own: the ingress bounds each
	// portal's share (docs/security.md, "Tenant isolation"), and an alert
	// fires at 80% of the cap.
	EventsMaxBytes int64
}

// DefaultEventsMaxBytes is the raw event stream's default size cap: 8 GiB,
// about 4 million events of 2 KiB, days of traffic for hundreds of portals.
const DefaultEventsMaxBytes = 8 << 30

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.EventsMaxAge == 0 {
		o.EventsMaxAge = 7 * 24 * time.Hour
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = 10 * time.Minute
	}
	if o.EventsMaxBytes == 0 {
		o.EventsMaxBytes = DefaultEventsMaxBytes
	}
	return o
}

// Validate reports options that cannot work.
func (o StreamOptions) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Replicas < 1 || o.Replicas > 5:
		return fmt.Errorf("eventbus: replicas %d out of range 1..5", o.Replicas)
	case o.DuplicateWindow > o.EventsMaxAge:
		return fmt.Errorf("eventbus: duplicate window %s longer than max age %s", o.DuplicateWindow, o.EventsMaxAge)
	case o.EventsMaxBytes < 1<<20:
		return fmt.Errorf("eventbus: events max bytes %d below 1 MiB", o.EventsMaxBytes)
	}
	return nil
}

// Streams returns every stream b24hub needs. This is the single definition;
// Provision applies it.
func Streams(o StreamOptions) []jetstream.StreamConfig {
	o = o.withDefaults()
	base := func(name, desc, prefix string, maxAge time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{prefix + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     o.Storage,
			Replicas:    o.Replicas,
			MaxAge:      maxAge,
			Duplicates:  2 * time.Minute,
			Discard:     jetstream.DiscardOld,
		}
	}
	events := base(StreamEvents, "Raw Bitrix24 events as received (redacted)", EventsPrefix, o.EventsMaxAge)
	events.Duplicates = o.DuplicateWindow
	events.MaxBytes = o.EventsMaxBytes
	return []jetstream.StreamConfig{
		events,
		base(StreamChanges, "Field-level domain changes from the sync services", ChangesPrefix, 7*24*time.Hour),
		base(StreamCommands, "Commands to write to Bitrix24 portals", CommandsPrefix, 7*24*time.Hour),
		base(StreamOutcomes, "Consumer outcomes, one per processing attempt", OutcomesPrefix, 3*24*time.Hour),
		base(StreamDead, "Dead letters with the reason in headers", DeadPrefix, 30*24*time.Hour),
	}
}

// Provision creates or updates every stream and key-value bucket. It is idempotent; run it from
// exactly one owner (the topology job, the local stack, or `b24ctl topology apply`).
func Provision(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	for _, cfg := range Streams(o) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("eventbus: provision stream %s: %w", cfg.Name, err)
		}
	}
	return provisionBuckets(ctx, js, o)
}

// CheckStreams returns an error unless each named stream (every stream when
// none is named) exists; readiness probes use it.
func CheckStreams(ctx context.Context, js jetstream.JetStream, names ...string) error {
	if len(names) == 0 {
		names = []string{StreamEvents, StreamChanges, StreamCommands, StreamOutcomes, StreamDead}
	}
	for _, name := range names {
		if _, err := js.Stream(ctx, name); err != nil {
			return fmt.Errorf("eventbus: stream %s: %w", name, err)
		}
	}
	return nil
}
