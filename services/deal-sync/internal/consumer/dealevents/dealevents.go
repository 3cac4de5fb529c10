// Package dealevents is deal-sync's consumer of raw deal events
// (ONCRMDEALADD, ONCRMDEALUPDATE, ONCRMDEALDELETE, ONCRMDEALMOVETOCATEGORY),
// and of the same changes raised as PHP events on an on-premise
// installation and delivered by its b24hub.forwarder module
// (ONAFTERCRMDEALADD, ONAFTERCRMDEALUPDATE, ONAFTERCRMDEALDELETE).
//
// On-premise events are handled exactly like REST events: their deal id
// (the envelope's entity id) is the hint, and the deal is fetched through
// the installation's REST webhook. Their field arrays are not used as the
// state: OnAfterCrmDealUpdate carries only the fields that save changed,
// not the deal, so a diff against the snapshot needs the fetch anyway; and
// one path for both sources keeps coalescing, batching, the rate limit and
// loop protection identical. See docs/onprem.md.
//
// Events are hints: they carry a deal id only. For each batch of one
// portal's events the handler fetches every distinct deal once with batched
// crm.deal.get (50 deals per request), compares it with the stored snapshot
// and, when it changed, writes the mirror and a DomainChange with the
// field-level diff in one transaction (the change leaves through the
// outbox). A change that deal-sync itself wrote — an own write still open in
// the registry, or a deal carrying the sync-lock flag — is mirrored but not
// published, so writes never come back as work.
package dealevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumer/mirror"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
	"github.com/jackc/pgx/v5"
)

// Durable is the consumer's durable name. PUBLIC API: renaming it makes a
// new consumer that reprocesses every deal event the stream still holds.
const Durable = "deal-sync"

// EntityType is the DomainChange entity type.
const EntityType = "deal"

// Events are the raw events this consumer handles: REST events, then the
// on-premise PHP events (OnAfterCrmDeal… upper-cased by the ingress).
var Events = []string{"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE", "ONCRMDEALMOVETOCATEGORY",
	"ONAFTERCRMDEALADD", "ONAFTERCRMDEALUPDATE", "ONAFTERCRMDEALDELETE"}

// deleteEvents say the deal is gone: no fetch, the mirror is marked deleted.
var deleteEvents = map[string]bool{"ONCRMDEALDELETE": true, "ONAFTERCRMDEALDELETE": true}

// Spec is the consumer definition: batches of up to 50 distinct deals of
// one portal gathered for 200ms.
func Spec() consumer.Spec {
	return consumer.Spec{
		Durable:        Durable,
		Description:    "deal-sync: mirror deals and publish field-level changes",
		FilterSubjects: eventbus.RawEventFilter(Events...),
		BatchSize:      bitrix.MaxBatch,
		BatchWindow:    200 * time.Millisecond,
	}
}

// Options tune the handler.
type Options struct {
	// SyncLockField is the deal field an external writer sets to mark its
	// write as a sync write ("UF_CRM_SYNC_LOCK"); empty disables it. A deal
	// fetched with the flag set is mirrored without publishing a change, and
	// the flag is cleared with one own write (whose echo is then skipped).
	SyncLockField string
	// SyncLockClearValue is written to clear the flag. Default "".
	SyncLockClearValue string
	// VolatileFields change on every write (DATE_MODIFY, MODIFY_BY_ID); echo
	// detection ignores them.
	VolatileFields []string
	// EchoTTL is how long an own write can explain an incoming change.
	EchoTTL time.Duration
	// CoalesceFor is how long the handler remembers which deals it fetched,
	// so that an event stored before such a fetch (a duplicate from a
	// multi-field bulk edit arriving in a later batch) costs no second
	// fetch. Default 1m.
	CoalesceFor time.Duration
	// Settle is how long after an event's ts the deal is fetched, so that
	// a second change within the same second (same message id, de-duplicated
	// by JetStream) is seen too; see consumer.WaitSettled. Default
	// consumer.DefaultSettle; negative disables.
	Settle time.Duration
}

// Handler is the deal-event consumer.
type Handler struct {
	clients bitrixport.Clients
	store   *store.Store
	mirrors *mirror.Mirror
	opt     Options
	log     *slog.Logger
	now     func() time.Time

	mu sync.Mutex
	// fetched maps member/deal to the stream time of the newest message
	// stored before the deal's last mirrored fetch began. Stream times are
	// compared with stream times only, so clock skew cannot lose a change.
	fetched map[string]time.Time
}

var _ consumer.BatchHandler[*eventsv1.Envelope] = (*Handler)(nil)

// New returns a Handler. relay may be nil (then the outbox is flushed only
// by the service's relay loop).
func New(clients bitrixport.Clients, st *store.Store, relay *outbox.Relay, opt Options, log *slog.Logger) *Handler {
	if opt.EchoTTL == 0 {
		opt.EchoTTL = 10 * time.Minute
	}
	if opt.CoalesceFor == 0 {
		opt.CoalesceFor = time.Minute
	}
	if opt.Settle == 0 {
		opt.Settle = consumer.DefaultSettle
	}
	return &Handler{clients: clients, store: st, mirrors: st.Mirror(relay), opt: opt, log: log, now: time.Now, fetched: map[string]time.Time{}}
}

// work is everything the batch says about one deal.
type work struct {
	id      int64
	msgs    []int // indexes into the batch
	deleted bool  // a DELETE event is among them
	latest  string
	stored  time.Time // the newest Published among msgs
}

// HandleBatch implements consumer.BatchHandler. Every batch holds one portal.
func (h *Handler) HandleBatch(ctx context.Context, batch []*consumer.Message[*eventsv1.Envelope]) []error {
	errs := make([]error, len(batch))
	member := batch[0].MemberID
	deals := map[int64]*work{}
	var order []int64
	var watermark time.Time // every message of the batch was stored by then
	for i, m := range batch {
		if m.Published.After(watermark) {
			watermark = m.Published
		}
		id, err := bitrix.ParseID(m.EntityID)
		if err != nil || id <= 0 {
			errs[i] = consumer.Permanent(fmt.Errorf("event %s has no deal id (%q)", m.Event, m.EntityID))
			continue
		}
		w := deals[int64(id)]
		if w == nil {
			w = &work{id: int64(id)}
			deals[int64(id)] = w
			order = append(order, int64(id))
		}
		w.msgs = append(w.msgs, i)
		w.latest = m.EventID
		if m.Published.After(w.stored) {
			w.stored = m.Published
		}
		if deleteEvents[m.Event] {
			w.deleted = true
		}
	}

	// Deals whose every event was stored before a fetch we already mirrored
	// need no fetch: that fetch saw their effect.
	var fetch []bitrix.ID
	for _, id := range order {
		w := deals[id]
		if w.deleted {
			continue
		}
		if t, ok := h.lastFetch(member, id); ok && !w.stored.IsZero() && !w.stored.After(t) {
			for _, i := range w.msgs {
				errs[i] = consumer.Skip("covered by a later fetch")
			}
			delete(deals, id)
			continue
		}
		fetch = append(fetch, bitrix.ID(id))
	}
	if len(deals) == 0 {
		return errs
	}

	client, err := h.clients.ClientFor(ctx, member)
	if err != nil {
		return fill(errs, deals, bitrixport.Classify(err))
	}
	got, perID := map[bitrix.ID]*bitrix.Deal{}, map[bitrix.ID]error{}
	if len(fetch) > 0 {
		var ts []time.Time
		for _, m := range batch {
			if m.Payload != nil && m.Payload.GetEventTs() != nil {
				ts = append(ts, m.Payload.GetEventTs().AsTime())
			}
		}
		if err := consumer.WaitSettled(ctx, h.now(), h.opt.Settle, ts...); err != nil {
			return fill(errs, deals, err)
		}
		got, perID, err = client.GetDeals(ctx, fetch)
		if err != nil {
			return fill(errs, deals, bitrixport.Classify(err))
		}
	}

	type pending struct {
		w         *work
		clearLock bool
	}
	var ents []mirror.Entity
	var todo []pending
	for _, id := range order {
		w, ok := deals[id]
		if !ok {
			continue
		}
		var fields change.Fields
		var deal *bitrix.Deal
		switch {
		case w.deleted:
		case got[bitrix.ID(id)] != nil:
			deal = got[bitrix.ID(id)]
			fields = change.Fields(deal.Fields)
		case errors.Is(perID[bitrix.ID(id)], bitrix.KindNotFound):
			// Deleted after the event was sent.
		case perID[bitrix.ID(id)] != nil:
			setAll(errs, w, bitrixport.Classify(perID[bitrix.ID(id)]))
			continue
		default:
			setAll(errs, w, fmt.Errorf("deal %d missing from the batch answer", id))
			continue
		}
		e, clearLock := h.entity(batch[w.msgs[len(w.msgs)-1]], member, id, deal, fields)
		ents, todo = append(ents, e), append(todo, pending{w: w, clearLock: clearLock})
	}
	for i, res := range h.mirrors.Apply(ctx, ents...) {
		w := todo[i].w
		var skip *consumer.SkipError
		if res != nil && !errors.As(res, &skip) {
			setAll(errs, w, res)
			continue
		}
		if !w.deleted && !watermark.IsZero() {
			h.noteFetch(member, w.id, watermark)
		}
		if todo[i].clearLock {
			if err := h.clearLock(ctx, client, member, w.id, w.latest); err != nil {
				res = bitrixport.Classify(err)
			}
		}
		setAll(errs, w, res)
	}
	return errs
}

// entity describes one deal's mirror write (nil fields: deleted) and
// whether the sync-lock flag must be cleared afterwards. A deal whose
// sync lock is set is saved without a change; so is one whose change is
// the echo of an own write.
func (h *Handler) entity(m *consumer.Message[*eventsv1.Envelope], member string, id int64, deal *bitrix.Deal, fields change.Fields) (mirror.Entity, bool) {
	locked := h.opt.SyncLockField != "" && fields != nil && flagSet(fields[h.opt.SyncLockField])
	return mirror.Entity{
		MemberID: member, Type: EntityType, ID: fmt.Sprint(id), EventID: m.EventID, Fields: fields,
		Lock: func(ctx context.Context, tx pgx.Tx) (mirror.Snapshot, error) {
			snap, err := store.LockDeal(ctx, tx, member, id)
			return mirror.Snapshot{Live: snap.Live(), Hash: snap.Hash, Fields: snap.Fields}, err
		},
		Save: func(ctx context.Context, tx pgx.Tx, hash string) error {
			if fields == nil {
				return store.SaveDeal(ctx, tx, store.Deal{MemberID: member, ID: id, SourceEventID: m.EventID})
			}
			return store.SaveDeal(ctx, tx, store.Deal{MemberID: member, ID: id, Fields: fields, Hash: hash, SourceEventID: m.EventID,
				Title: deal.Title, StageID: deal.StageID, Opportunity: deal.Opportunity, CurrencyID: deal.CurrencyID,
				CategoryID: int64(deal.CategoryID), AssignedByID: int64(deal.AssignedByID), DateModify: deal.DateModify})
		},
		Check: func(ctx context.Context, tx pgx.Tx, before mirror.Snapshot) (string, error) {
			switch {
			case fields == nil:
				return "", nil
			case locked:
				return "sync lock set", nil
			case !before.Live:
				return "", nil
			}
			var changedFields []string
			for _, c := range change.Diff(before.Fields, fields, h.opt.VolatileFields...) {
				changedFields = append(changedFields, c.Field)
			}
			cmd, err := store.ConsumeEcho(ctx, tx, member, id, changedFields, fields, h.opt.EchoTTL)
			if err != nil {
				return "", err
			}
			if cmd != "" {
				m.Logger.DebugContext(ctx, "echo of an own write", "command_id", cmd)
				return "echo of own write", nil
			}
			return "", nil
		},
	}, locked
}

// clearLock clears the sync-lock flag with one own write. The write is
// registered first, so its echo (a change of the flag only) is skipped and
// never causes another write.
func (h *Handler) clearLock(ctx context.Context, client *bitrix.Client, member string, id int64, eventID string) error {
	clear, _ := json.Marshal(h.opt.SyncLockClearValue)
	w := store.Write{CommandID: "unlock:" + member + ":" + fmt.Sprint(id) + ":" + eventID, MemberID: member, DealID: id,
		Fields: change.Fields{h.opt.SyncLockField: clear}, Origin: "deal-sync/sync-lock"}
	if err := h.store.RecordWrite(ctx, w, store.WritePending); err != nil {
		return err
	}
	err := client.UpdateDeal(ctx, bitrix.ID(id), map[string]any{h.opt.SyncLockField: h.opt.SyncLockClearValue}, bitrix.DealUpdate{})
	if err != nil {
		var be *bitrix.Error
		if errors.As(err, &be) && !be.Ambiguous {
			_ = h.store.DeleteWrite(ctx, w.CommandID)
		}
		return fmt.Errorf("clear sync lock of deal %d: %w", id, err)
	}
	return h.store.SetWriteStatus(ctx, w.CommandID, store.WriteWritten)
}

// flagSet reads a sync-lock value: anything but empty, "N", "0", "false",
// null or an empty list is set.
func flagSet(v json.RawMessage) bool {
	if len(v) == 0 {
		return false
	}
	var x any
	if json.Unmarshal(v, &x) != nil {
		return false
	}
	switch t := x.(type) {
	case nil:
		return false
	case bool:
		return t
	case float64:
		return t != 0
	case string:
		s := strings.TrimSpace(strings.ToUpper(t))
		return s != "" && s != "N" && s != "0" && s != "FALSE"
	case []any:
		return len(t) > 0
	}
	return true
}

func (h *Handler) lastFetch(member string, id int64) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.fetched[member+"/"+fmt.Sprint(id)]
	return t, ok
}

func (h *Handler) noteFetch(member string, id int64, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fetched[member+"/"+fmt.Sprint(id)] = at
	if len(h.fetched) > 100_000 {
		for k, t := range h.fetched {
			if h.now().Sub(t) > h.opt.CoalesceFor {
				delete(h.fetched, k)
			}
		}
	}
}

func setAll(errs []error, w *work, err error) {
	for _, i := range w.msgs {
		errs[i] = err
	}
}

func fill(errs []error, deals map[int64]*work, err error) []error {
	for _, w := range deals {
		setAll(errs, w, err)
	}
	return errs
}
