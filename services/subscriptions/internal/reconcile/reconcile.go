// Package reconcile recovers changes whose pushes Bitrix24 dropped, by
// polling: per portal and entity type it lists what changed since a durable
// watermark (">DATE_MODIFY", start=-1, ID paging, §4.8) and publishes one
// event per changed entity (source=reconcile). Consumers fetch current
// state and compare it with their snapshot, so entities already synced by a
// push become no-ops.
//
// The query starts Overlap before the watermark: modification times have
// one-second resolution and a change committed in the same second as the
// last poll must not fall between two polls. Re-publishing an unchanged
// entity is cheap (same message id within JetStream's dedup window, a
// snapshot no-op after it). Deleted entities disappear from lists, so
// polling cannot see deletions; only pushes and the offline queue can.
package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/subscriptions/internal/desired"
	"github.com/b24hub/b24hub/services/subscriptions/internal/rawevent"
)

// Lister walks a list method with start=-1 and ID paging; *bitrix.Client
// implements it.
type Lister interface {
	Walk(ctx context.Context, method string, params map[string]any) iter.Seq2[json.RawMessage, error]
}

var _ Lister = (*bitrix.Client)(nil)

// Watermarks stores the per-portal, per-entity watermark; *store.Store
// implements it.
type Watermarks interface {
	Watermark(ctx context.Context, memberID, entity string) (time.Time, bool, error)
	SetWatermark(ctx context.Context, memberID, entity string, t time.Time) error
}

// Entity describes how one entity type is polled and turned into events.
type Entity struct {
	// Name is the entity type (desired.EntityDeal, desired.EntityTask).
	Name string
	// Method is the list method.
	Method string
	// FilterField is the modification-time filter key, without operator.
	FilterField string
	// Select lists the fields fetched (the id and the modification time).
	Select []string
	// Event is the event code published for a changed entity.
	Event string
	// row decodes a row into id and modification time.
	row func(json.RawMessage) (string, string, error)
	// data builds the event's data block for an id.
	data func(id string) map[string]any
}

// Entities are the supported entity types.
var Entities = map[string]Entity{
	desired.EntityDeal: {
		Name: desired.EntityDeal, Method: "crm.deal.list", FilterField: "DATE_MODIFY",
		Select: []string{"ID", "DATE_MODIFY"}, Event: "ONCRMDEALUPDATE",
		row: func(raw json.RawMessage) (string, string, error) {
			var r struct {
				ID       bitrix.ID `json:"ID"`
				Modified string    `json:"DATE_MODIFY"`
			}
			err := json.Unmarshal(raw, &r)
			return r.ID.String(), r.Modified, err
		},
		data: func(id string) map[string]any { return map[string]any{"FIELDS": map[string]any{"ID": id}} },
	},
	desired.EntityTask: {
		// tasks.task.list filters and sorts by UPPER_CASE names but answers
		// camelCase (§4.8 quirks).
		Name: desired.EntityTask, Method: "tasks.task.list", FilterField: "CHANGED_DATE",
		Select: []string{"ID", "CHANGED_DATE"}, Event: "ONTASKUPDATE",
		row: func(raw json.RawMessage) (string, string, error) {
			var r struct {
				ID       bitrix.ID `json:"id"`
				Modified string    `json:"changedDate"`
			}
			err := json.Unmarshal(raw, &r)
			return r.ID.String(), r.Modified, err
		},
		data: func(id string) map[string]any {
			return map[string]any{
				"FIELDS_BEFORE": map[string]any{"ID": id}, "FIELDS_AFTER": map[string]any{"ID": id},
				"IS_ACCESSIBLE_BEFORE": "undefined", "IS_ACCESSIBLE_AFTER": "undefined",
			}
		},
	},
}

// Portal identifies the portal being reconciled.
type Portal struct {
	MemberID       string
	Domain         string
	ClientEndpoint string
}

// Config tunes a Reconciler.
type Config struct {
	// Overlap is how far before the watermark each poll starts. Default 1m.
	Overlap time.Duration
	// InitialLookback is where the first poll of a portal starts, before
	// now. Default 1h.
	InitialLookback time.Duration
}

// Reconciler polls portals for changes.
type Reconciler struct {
	cfg Config
	pub rawevent.Publisher
	wm  Watermarks
	now func() time.Time
}

// New returns a Reconciler.
func New(cfg Config, pub rawevent.Publisher, wm Watermarks) *Reconciler {
	if cfg.Overlap <= 0 {
		cfg.Overlap = time.Minute
	}
	if cfg.InitialLookback <= 0 {
		cfg.InitialLookback = time.Hour
	}
	return &Reconciler{cfg: cfg, pub: pub, wm: wm, now: time.Now}
}

// Stats is what one Run did.
type Stats struct {
	Entity    string    `json:"entity"`
	Since     time.Time `json:"since"`
	Published int       `json:"published"`
	Watermark time.Time `json:"watermark"`
}

// Run polls one entity type of one portal and publishes an event per
// changed entity. The watermark moves only after the whole walk published
// successfully, to the newest modification time seen.
func (r *Reconciler) Run(ctx context.Context, portal Portal, c Lister, entity string) (Stats, error) {
	ent, ok := Entities[entity]
	if !ok {
		return Stats{}, fmt.Errorf("reconcile: unknown entity %q", entity)
	}
	st := Stats{Entity: entity}
	wm, ok, err := r.wm.Watermark(ctx, portal.MemberID, entity)
	if err != nil {
		return st, err
	}
	if !ok {
		wm = r.now().Add(-r.cfg.InitialLookback)
	}
	st.Since = wm.Add(-r.cfg.Overlap)
	newest := wm
	params := map[string]any{
		"filter": map[string]any{">" + ent.FilterField: st.Since.Format(time.RFC3339)},
		"select": ent.Select,
	}
	for raw, err := range c.Walk(ctx, ent.Method, params) {
		if err != nil {
			return st, fmt.Errorf("reconcile: %s %s: %w", portal.MemberID, ent.Method, err)
		}
		id, modified, err := ent.row(raw)
		if err != nil || id == "" || id == "0" {
			return st, fmt.Errorf("reconcile: %s %s: bad row: %v", portal.MemberID, ent.Method, err)
		}
		ts, _ := time.Parse(time.RFC3339, strings.TrimSpace(modified))
		msg, err := rawevent.Build(rawevent.Event{
			MessageID: MessageID(portal.MemberID, entity, id, modified), MemberID: portal.MemberID,
			Domain: portal.Domain, ClientEndpoint: portal.ClientEndpoint, Name: ent.Event,
			Data: ent.data(id), TS: ts, Source: eventsv1.Source_SOURCE_RECONCILE,
		}, r.now())
		if err != nil {
			return st, err
		}
		if _, err := r.pub.Publish(ctx, msg); err != nil {
			return st, fmt.Errorf("reconcile: publish: %w", err)
		}
		st.Published++
		if ts.After(newest) {
			newest = ts
		}
	}
	st.Watermark = newest
	if err := r.wm.SetWatermark(ctx, portal.MemberID, entity, newest); err != nil {
		return st, err
	}
	return st, nil
}

// MessageID is the Nats-Msg-Id of a reconciled change: the same entity
// version always gets the same id.
func MessageID(memberID, entity, id, modified string) string {
	h := sha256.New()
	for _, s := range []string{"reconcile/v1", memberID, entity, id, modified} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
