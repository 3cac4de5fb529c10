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
	"strconv"
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
	"google.golang.org/protobuf/proto"
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
// one portal gathered for 200ms; 4 batches at once, growing to 32 while
// batches wait. A batch spends most of its time waiting for its portal's
// REST slot and answer, so with many portals a fixed handful of workers
// leaves the portals' budgets unused while events queue; 32 bounds the
// transactions and REST calls one replica holds open.
func Spec() consumer.Spec {
	return consumer.Spec{
		Durable:        Durable,
		Description:    "deal-sync: mirror deals and publish field-level changes",
		FilterSubjects: eventbus.RawEventFilter(Events...),
		BatchSize:      bitrix.MaxBatch,
		BatchWindow:    200 * time.Millisecond,
		Concurrency:    consumer.DefaultConcurrency,
		MaxConcurrency: 32,
		// Every batch spends one of its portal's REST slots (2 per
		// second): a batch per portal at a time, as large as what waited.
		OneBatchPerMember: true,
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
	relay   *outbox.Relay
	opt     Options
	log     *slog.Logger
	now     func() time.Time

	mu sync.Mutex
	// fetched maps member/deal to the stream time of the newest message
	// stored before the deal's last mirrored fetch began. Stream times are
	// compared with stream times only, so clock skew cannot lose a change.
	fetched map[string]time.Time

	// portals maps member → the *bitrix.Client its last batch used, whose
	// limiter ReadyAt asks.
	portals sync.Map
}

var (
	_ consumer.BatchHandler[*eventsv1.Envelope] = (*Handler)(nil)
	_ consumer.Pacer                            = (*Handler)(nil)
)

// ReadyAt implements consumer.Pacer: a batch spends one of its portal's
// REST slots, so the runtime keeps gathering the portal's events until
// the limiter's next slot instead of handing a batch over to wait for it
// here. At 1,000 events/s over 20 portals this is the difference between
// accepted → done p99 1.03 s and 0.54 s (tools/bench e2e, docs/benchmarks.md).
func (h *Handler) ReadyAt(member string) time.Time {
	if c, ok := h.portals.Load(member); ok {
		return c.(*bitrix.Client).NextSlot()
	}
	return time.Time{}
}

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
	return &Handler{clients: clients, store: st, relay: relay, opt: opt, log: log, now: time.Now, fetched: map[string]time.Time{}}
}

// work is everything the batch says about one deal.
type work struct {
	id      int64
	msgs    []int // indexes into the batch
	deleted bool  // a DELETE event is among them
	latest  string
	stored  time.Time // the newest Published among msgs
	// clearLock: the fetched deal carries the sync-lock flag, to be
	// cleared once its state is committed.
	clearLock bool
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
	if c, ok := h.portals.Load(member); !ok || c != client {
		h.portals.Store(member, client) // not on every batch: a store allocates
	}
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
	}
	// Lock every deal of the batch before fetching it: the fetch and the
	// write of one deal are then never overtaken by another worker's or
	// replica's (see store.Batch). The portal's slot is waited for first,
	// so no transaction is held open while the limiter makes us wait.
	fctx := ctx
	if len(fetch) > 0 {
		if fctx, err = client.Reserve(ctx); err != nil {
			return fill(errs, deals, bitrixport.Classify(err))
		}
	}
	ids := make([]int64, 0, len(deals))
	for _, id := range order {
		if deals[id] != nil {
			ids = append(ids, id)
		}
	}
	tx, snaps, err := h.store.BeginBatch(ctx, member, ids)
	if err != nil {
		// The database not answering is not the events' fault: the runtime
		// pauses instead of spending deliveries.
		return fill(errs, deals, consumer.ClassifyPostgres(err))
	}
	defer tx.Rollback(ctx)
	got, perID := map[bitrix.ID]*bitrix.Deal{}, map[bitrix.ID]error{}
	if len(fetch) > 0 {
		got, perID, err = client.GetDeals(fctx, fetch)
		if err != nil {
			return fill(errs, deals, bitrixport.Classify(err))
		}
	}
	written, err := h.write(ctx, tx, batch, member, order, deals, snaps, got, perID, errs)
	if err != nil {
		return fill(errs, deals, consumer.ClassifyPostgres(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fill(errs, deals, consumer.ClassifyPostgres(err))
	}
	if written > 0 && h.relay != nil {
		h.relay.FlushAfterCommit(ctx, tx.Mark())
	}
	for _, id := range order {
		w, ok := deals[id]
		if !ok || errs[w.msgs[0]] != nil && !isSkip(errs[w.msgs[0]]) {
			continue
		}
		if !w.deleted && !watermark.IsZero() {
			h.noteFetch(member, w.id, watermark)
		}
		if w.clearLock {
			if err := h.clearLock(ctx, client, member, w.id, w.latest); err != nil {
				setAll(errs, w, bitrixport.Classify(err))
			}
		}
	}
	return errs
}

// write decides every deal's outcome against its snapshot and queues its
// writes in tx: the new state with its hash (or the deletion marker), and,
// unless the sync lock is set or the change is the echo of an own write,
// a DomainChange with the field-level diff into the outbox. A deal with
// nothing to publish gets its consumer.Skip reason in errs. It returns the
// number of changes queued.
func (h *Handler) write(ctx context.Context, tx *store.Batch, batch []*consumer.Message[*eventsv1.Envelope], member string, order []int64,
	deals map[int64]*work, snaps map[int64]store.RawSnapshot, got map[bitrix.ID]*bitrix.Deal, perID map[bitrix.ID]error, errs []error) (int, error) {
	type pending struct {
		w      *work
		deal   *bitrix.Deal
		fields change.Fields
		before change.Fields
		hash   string
	}
	var todo []pending
	var echoIDs []int64
	for _, id := range order {
		w, ok := deals[id]
		if !ok {
			continue
		}
		p := pending{w: w}
		switch {
		case w.deleted:
		case got[bitrix.ID(id)] != nil:
			p.deal = got[bitrix.ID(id)]
			p.fields = change.Fields(p.deal.Fields)
		case errors.Is(perID[bitrix.ID(id)], bitrix.KindNotFound):
			// Deleted after the event was sent.
		case perID[bitrix.ID(id)] != nil:
			setAll(errs, w, bitrixport.Classify(perID[bitrix.ID(id)]))
			continue
		default:
			setAll(errs, w, fmt.Errorf("deal %d missing from the batch answer", id))
			continue
		}
		snap := snaps[id]
		if p.fields == nil {
			if !snap.Live() {
				setAll(errs, w, consumer.Skip(mirror.ReasonAlreadyDeleted))
				continue
			}
		} else {
			p.hash = change.Hash(p.fields)
			if snap.Live() && snap.Hash == p.hash {
				setAll(errs, w, consumer.Skip(mirror.ReasonNoChange))
				continue
			}
			w.clearLock = h.opt.SyncLockField != "" && flagSet(p.fields[h.opt.SyncLockField])
		}
		before, err := snap.Fields()
		if err != nil {
			return 0, err
		}
		p.before = before
		if p.fields != nil && snap.Live() && !w.clearLock {
			echoIDs = append(echoIDs, id)
		}
		todo = append(todo, p)
	}
	open, err := tx.OpenWrites(ctx, echoIDs, h.opt.EchoTTL)
	if err != nil {
		return 0, err
	}
	written := 0
	for _, p := range todo {
		w, m := p.w, batch[p.w.msgs[len(p.w.msgs)-1]]
		snap := snaps[w.id]
		d := store.Deal{MemberID: member, ID: w.id, SourceEventID: m.EventID}
		if p.fields != nil {
			d = store.Deal{MemberID: member, ID: w.id, Fields: p.fields, Raw: p.deal.Raw, Hash: p.hash, SourceEventID: m.EventID,
				Title: p.deal.Title, StageID: p.deal.StageID, Opportunity: p.deal.Opportunity, CurrencyID: p.deal.CurrencyID,
				CategoryID: int64(p.deal.CategoryID), AssignedByID: int64(p.deal.AssignedByID), DateModify: p.deal.DateModify}
		}
		if err := tx.Save(d); err != nil {
			return 0, err
		}
		switch {
		case w.clearLock:
			setAll(errs, w, consumer.Skip("sync lock set"))
			continue
		case p.fields != nil && snap.Live():
			var changedFields []string
			for _, c := range change.Diff(p.before, p.fields, h.opt.VolatileFields...) {
				changedFields = append(changedFields, c.Field)
			}
			if cmd := tx.Echo(open, w.id, changedFields, p.fields); cmd != "" {
				m.Logger.DebugContext(ctx, "echo of an own write", "command_id", cmd)
				setAll(errs, w, consumer.Skip("echo of own write"))
				continue
			}
		}
		dc := change.Build(member, EntityType, strconv.FormatInt(w.id, 10), p.before, p.fields, snap.Live(), m.EventID, h.now())
		data, err := proto.Marshal(dc)
		if err != nil {
			return 0, consumer.Permanent(fmt.Errorf("encode change: %w", err))
		}
		if err := tx.Publish(ctx, outbox.Message{MsgID: dc.GetId(), Subject: change.Subject(dc), Data: data,
			Header: map[string][]string{eventbus.HeaderContentType: {eventbus.ContentTypeProtobuf}}}); err != nil {
			return 0, consumer.Permanent(err)
		}
		written++
	}
	return written, nil
}

func isSkip(err error) bool {
	var skip *consumer.SkipError
	return errors.As(err, &skip)
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
