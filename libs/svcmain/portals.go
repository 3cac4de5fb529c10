package svcmain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoPortalsBucket is wrapped by WatchPortals's error when the portals
// KV bucket cannot be opened; the registry it returns then still holds the
// portals file.
var ErrNoPortalsBucket = errors.New("portals bucket")

// WatchPortals returns a registry fed by file (when not empty; reloaded
// every 5 seconds until ctx ends) and by the portals KV bucket of js.
//
// A missing bucket returns the registry and an error wrapping
// ErrNoPortalsBucket: a service that can work from the file alone logs it
// and carries on. Any other error returns a nil registry.
func WatchPortals(ctx context.Context, js jetstream.JetStream, file string, log *slog.Logger) (*portals.Registry, error) {
	reg := portals.NewRegistry()
	if file != "" {
		if err := reg.LoadFile(file); err != nil {
			return nil, err
		}
		go reg.WatchFile(ctx, file, 5*time.Second, log)
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		return reg, fmt.Errorf("%w: %w (run `b24ctl topology apply`)", ErrNoPortalsBucket, err)
	}
	if err := reg.WatchKV(ctx, kv, log); err != nil {
		return nil, err
	}
	return reg, nil
}

// Portals returns the portal registry a service authenticates or calls
// portals with: p.Registry when set, else file (B24HUB_PORTALS_FILE; may be
// empty) and the portals bucket, watched until ctx ends. A missing bucket
// is logged as a warning and the file alone is used.
func (p *Process) Portals(ctx context.Context, file string) (*portals.Registry, error) {
	if p.Registry != nil {
		return p.Registry, nil
	}
	js, err := jetstream.New(p.NATS)
	if err != nil {
		return nil, err
	}
	reg, err := WatchPortals(ctx, js, file, p.Log)
	if errors.Is(err, ErrNoPortalsBucket) {
		p.Log.WarnContext(ctx, "portals bucket missing; only the portals file is used", "error", err)
		return reg, nil
	}
	return reg, err
}
