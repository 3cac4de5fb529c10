package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/monitor/internal/alert"
)

// PortalRegistry is the live set of portals the monitor's alert rules
// watch; *portals.Registry satisfies it. A portal is watched while it is
// registered and active: one removed from the portals file, deleted from
// the B24_PORTALS bucket or uninstalled (ONAPPUNINSTALL marks it inactive)
// stops being evaluated and its alerts resolve.
type PortalRegistry interface {
	Lookup(memberID string) (portals.Portal, bool)
}

var _ PortalRegistry = (*portals.Registry)(nil)

// livePortals answers alert.Portals from a registry.
type livePortals struct{ reg PortalRegistry }

var _ alert.Portals = livePortals{}

// Watched reports whether memberID is registered and active.
func (l livePortals) Watched(memberID string) bool {
	p, ok := l.reg.Lookup(memberID)
	return ok && p.Active
}

// ownPortals is the registry the monitor keeps itself when Deps.Portals is
// not set: the portals file (reloaded every portalsFileEvery) and the
// B24_PORTALS bucket, as every other service reads them.
type ownPortals struct {
	reg  *portals.Registry
	file string
}

// portalsFileEvery is how often the monitor's own registry re-reads the
// portals file.
const portalsFileEvery = 5 * time.Second

// newOwnPortals loads file (when set) so a broken file is a start-up
// error, as in the other services.
func newOwnPortals(file string) (*ownPortals, error) {
	o := &ownPortals{reg: portals.NewRegistry(), file: file}
	if file != "" {
		if err := o.reg.LoadFile(file); err != nil {
			return nil, fmt.Errorf("monitor: %w", err)
		}
	}
	return o, nil
}

// watch follows the file and the bucket until ctx ends. It returns once
// the bucket's current contents are loaded (waiting for NATS and for the
// bucket to exist), so the evaluator never runs on a partial registry:
// that would resolve the alerts of installed portals only to fire them
// again a moment later.
func (s *Service) watchOwnPortals(ctx context.Context) error {
	o := s.own
	if o.file != "" {
		go o.reg.WatchFile(ctx, o.file, portalsFileEvery, s.log)
	}
	return s.retry(ctx, "portals bucket watch", 5*time.Second, func(ctx context.Context) error {
		kv, err := s.js.KeyValue(ctx, eventbus.BucketPortals)
		if err != nil {
			return fmt.Errorf("portals bucket %s: %w (run `b24ctl topology apply`)", eventbus.BucketPortals, err)
		}
		return o.reg.WatchKV(ctx, kv, s.log)
	})
}
