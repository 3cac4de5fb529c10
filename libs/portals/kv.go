package portals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// Installed is the record the app-install flow writes to the portals bucket
// (eventbus.BucketPortals), keyed by member id. It carries no secret: only
// the application token's digest.
type Installed struct {
	MemberID       string `json:"member_id"`
	Domain         string `json:"domain"`
	TokenSHA256    string `json:"application_token_sha256"`
	ClientEndpoint string `json:"client_endpoint"`
	Plan           string `json:"plan,omitempty"`
	Active         bool   `json:"active"`
}

// PutInstalled stores rec in kv (create or overwrite).
func PutInstalled(ctx context.Context, kv jetstream.KeyValue, rec Installed) error {
	p := Portal{MemberID: rec.MemberID, TokenSHA256: rec.TokenSHA256, Plan: rec.Plan}
	if err := p.validate(); err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, rec.MemberID, b); err != nil {
		return fmt.Errorf("portals: put %s: %w", rec.MemberID, err)
	}
	return nil
}

// WatchKV mirrors kv into r (source "install") until ctx ends. It returns
// once the current contents are loaded, so a caller can start serving with a
// complete registry; updates keep flowing in the background.
func (r *Registry) WatchKV(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("portals: watch: %w", err)
	}
	apply := func(e jetstream.KeyValueEntry) {
		if e.Operation() != jetstream.KeyValuePut {
			r.Delete(SourceInstall, e.Key())
			return
		}
		var rec Installed
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			log.ErrorContext(ctx, "portals: bad installed record", "member_id", e.Key(), "error", err)
			return
		}
		p := Portal{MemberID: rec.MemberID, Domain: rec.Domain, TokenSHA256: rec.TokenSHA256,
			ClientEndpoint: rec.ClientEndpoint, Plan: rec.Plan, Active: rec.Active}
		if err := r.Put(SourceInstall, p); err != nil {
			log.ErrorContext(ctx, "portals: invalid installed record", "member_id", e.Key(), "error", err)
		}
	}
	// The watcher sends the current values, then a nil marker, then updates.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		apply(e)
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					if ctx.Err() == nil {
						log.ErrorContext(ctx, "portals: watch ended", "error", errors.New("updates channel closed"))
					}
					return
				}
				if e != nil {
					apply(e)
				}
			}
		}
	}()
	return nil
}
