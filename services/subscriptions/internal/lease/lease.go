// Package lease elects one active instance among replicas with a record in
// a NATS key-value bucket (eventbus.BucketLeases). The holder renews the
// record every TTL/3 with compare-and-swap on its revision; a contender
// takes it over when the record has expired, and at once when the holder
// releases it on shutdown (contenders watch the key, so a graceful handover
// costs one round trip, and a crash costs at most one TTL).
//
// Expiry compares the holder's wall-clock deadline with the contender's
// clock, so clock skew between replicas shortens or lengthens a takeover by
// the skew; keep clocks in sync (NTP) and the TTL well above the skew.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Record is the value stored under the lease key.
type Record struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// Lease is one contender for one named lease.
type Lease struct {
	kv     jetstream.KeyValue
	name   string
	holder string
	ttl    time.Duration
	log    *slog.Logger
	now    func() time.Time
}

// New returns a contender named holder (unique per process) for the lease
// name. ttl must be at least 300ms.
func New(kv jetstream.KeyValue, name, holder string, ttl time.Duration, log *slog.Logger) (*Lease, error) {
	if ttl < 300*time.Millisecond {
		return nil, fmt.Errorf("lease: ttl %s below 300ms", ttl)
	}
	if name == "" || holder == "" {
		return nil, errors.New("lease: name and holder are required")
	}
	return &Lease{kv: kv, name: name, holder: holder, ttl: ttl, log: log, now: time.Now}, nil
}

// Holder returns this contender's id.
func (l *Lease) Holder() string { return l.holder }

// Current returns the record as stored (zero Record when free).
func (l *Lease) Current(ctx context.Context) (Record, error) {
	rec, _, err := l.load(ctx)
	return rec, err
}

// Run contends for the lease until ctx ends. Each time it is acquired, lead
// is called with a context that is cancelled when the lease is lost (a
// renewal failed or was refused) or ctx ends; Run waits for lead to return
// before contending again. On return the lease is released if held.
func (l *Lease) Run(ctx context.Context, lead func(ctx context.Context)) error {
	w, err := l.kv.Watch(ctx, l.name, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("lease: watch %s: %w", l.name, err)
	}
	defer func() { _ = w.Stop() }()
	for ctx.Err() == nil {
		rev, ok := l.tryAcquire(ctx)
		if !ok {
			// Wait for a release (delete) or at most a third of the TTL.
			t := time.NewTimer(l.ttl / 3)
		wait:
			for {
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
					break wait
				case e := <-w.Updates():
					if e != nil && e.Operation() != jetstream.KeyValuePut {
						t.Stop()
						break wait
					}
				}
			}
			continue
		}
		l.log.InfoContext(ctx, "lease acquired", "lease", l.name, "holder", l.holder)
		l.hold(ctx, rev, lead)
	}
	return nil
}

// hold runs lead while renewing; it releases the lease when done.
func (l *Lease) hold(ctx context.Context, rev uint64, lead func(ctx context.Context)) {
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(lctx)
	}()
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	lost := false
loop:
	for {
		select {
		case <-done:
			break loop
		case <-ctx.Done():
			break loop
		case <-t.C:
			n, err := l.renew(ctx, rev)
			if err != nil {
				l.log.WarnContext(ctx, "lease lost", "lease", l.name, "holder", l.holder, "error", err)
				lost = true
				break loop
			}
			rev = n
		}
	}
	cancel()
	<-done
	if !lost {
		// Graceful handover: delete only our own revision.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		if err := l.kv.Delete(rctx, l.name, jetstream.LastRevision(rev)); err != nil {
			l.log.WarnContext(ctx, "lease release failed; it expires by itself", "lease", l.name, "error", err)
		} else {
			l.log.InfoContext(ctx, "lease released", "lease", l.name, "holder", l.holder)
		}
	}
}

// tryAcquire takes the lease when it is free or expired.
func (l *Lease) tryAcquire(ctx context.Context) (uint64, bool) {
	rec, rev, err := l.load(ctx)
	if err != nil {
		l.log.WarnContext(ctx, "lease: read failed", "lease", l.name, "error", err)
		return 0, false
	}
	val, _ := json.Marshal(Record{Holder: l.holder, Expires: l.now().Add(l.ttl)})
	switch {
	case rev == 0:
		n, err := l.kv.Create(ctx, l.name, val)
		return n, err == nil
	case rec.Holder == l.holder || !l.now().Before(rec.Expires):
		n, err := l.kv.Update(ctx, l.name, val, rev)
		return n, err == nil
	}
	return 0, false
}

func (l *Lease) renew(ctx context.Context, rev uint64) (uint64, error) {
	val, _ := json.Marshal(Record{Holder: l.holder, Expires: l.now().Add(l.ttl)})
	rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
	defer cancel()
	return l.kv.Update(rctx, l.name, val, rev)
}

// load returns the record and its revision; revision 0 means free.
func (l *Lease) load(ctx context.Context) (Record, uint64, error) {
	e, err := l.kv.Get(ctx, l.name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		// A deleted key's revision must be used to re-create it: Create
		// handles that itself.
		return Record{}, 0, nil
	}
	if err != nil {
		return Record{}, 0, err
	}
	var rec Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return Record{}, e.Revision(), nil // garbage: treat as expired
	}
	return rec, e.Revision(), nil
}
