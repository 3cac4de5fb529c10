// Package taskevents is the tasks service's consumer of ONTASKADD,
// ONTASKUPDATE, ONTASKDELETE and ONTASKCOMMENTADD.
//
// Task events carry an id only (FIELDS_BEFORE holds no old values), and no
// event ever says a checklist changed. So for each batch of one portal's
// events the handler fetches every distinct task and its checklist with
// batched tasks.task.get + task.checklistitem.getlist (25 tasks per
// request), compares task and checklist together with the snapshot, and
// mirrors and publishes the diff (checklist rows appear as
// "checklist.<ID>" fields). A comment event — including the new task card's
// ONTASKCOMMENTADD with ID=0 and a chat MESSAGE_ID — refreshes its task.
package taskevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumer/mirror"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/tasks/internal/store"
	"github.com/jackc/pgx/v5"
)

// Durable is the consumer's durable name. PUBLIC API: renaming it makes a
// new consumer that reprocesses every task event the stream still holds.
const Durable = "tasks"

// EntityType is the DomainChange entity type.
const EntityType = "task"

// Events are the raw events this consumer handles.
var Events = []string{"ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE", "ONTASKCOMMENTADD"}

// Spec is the consumer definition: batches of up to 25 distinct tasks of
// one portal (two batch commands each: one 50-command REST request).
func Spec() consumer.Spec {
	return consumer.Spec{
		Durable:        Durable,
		Description:    "tasks: mirror tasks with checklists and publish field-level changes",
		FilterSubjects: eventbus.RawEventFilter(Events...),
		BatchSize:      bitrix.MaxBatch / 2,
		BatchWindow:    200 * time.Millisecond,
	}
}

// Handler is the task-event consumer.
type Handler struct {
	clients bitrixport.Clients
	mirrors *mirror.Mirror
	now     func() time.Time
}

var _ consumer.BatchHandler[*eventsv1.Envelope] = (*Handler)(nil)

// New returns a Handler; relay may be nil.
func New(clients bitrixport.Clients, st *store.Store, relay *outbox.Relay) *Handler {
	return &Handler{clients: clients, mirrors: st.Mirror(relay), now: time.Now}
}

// HandleBatch implements consumer.BatchHandler.
func (h *Handler) HandleBatch(ctx context.Context, batch []*consumer.Message[*eventsv1.Envelope]) []error {
	errs := make([]error, len(batch))
	member := batch[0].MemberID
	byTask := map[int64][]int{}
	deleted := map[int64]bool{}
	var order []int64
	for i, m := range batch {
		id, err := bitrix.ParseID(m.EntityID)
		if err != nil || id <= 0 {
			errs[i] = consumer.Permanent(fmt.Errorf("event %s has no task id (%q)", m.Event, m.EntityID))
			continue
		}
		if _, ok := byTask[int64(id)]; !ok {
			order = append(order, int64(id))
		}
		byTask[int64(id)] = append(byTask[int64(id)], i)
		if m.Event == "ONTASKDELETE" {
			deleted[int64(id)] = true
		}
	}
	set := func(id int64, err error) {
		for _, i := range byTask[id] {
			errs[i] = err
		}
	}
	if len(order) == 0 {
		return errs
	}
	client, err := h.clients.ClientFor(ctx, member)
	if err != nil {
		return consumer.FailAll(len(batch), bitrixport.Classify(err))
	}
	// Two changes of one task within the same second share a message id
	// (whole-second ts), so fetch only once that second has settled.
	var ts []time.Time
	for _, m := range batch {
		if m.Payload != nil && m.Payload.GetEventTs() != nil {
			ts = append(ts, m.Payload.GetEventTs().AsTime())
		}
	}
	if err := consumer.WaitSettled(ctx, h.now(), consumer.DefaultSettle, ts...); err != nil {
		return consumer.FailAll(len(batch), err)
	}
	var cmds []bitrix.BatchCommand
	for _, id := range order {
		if deleted[id] {
			continue
		}
		cmds = append(cmds,
			bitrix.BatchCommand{Key: fmt.Sprint("t", id), Method: "tasks.task.get", Params: map[string]any{"taskId": id}},
			bitrix.BatchCommand{Key: fmt.Sprint("c", id), Method: "task.checklistitem.getlist",
				Params: map[string]any{"TASKID": id, "ORDER": map[string]string{"ID": "asc"}}})
	}
	res := &bitrix.BatchResult{}
	if len(cmds) > 0 {
		if res, err = client.BatchAll(ctx, cmds); err != nil {
			for _, id := range order {
				set(id, bitrixport.Classify(err))
			}
			return errs
		}
	}
	var ents []mirror.Entity
	var ids []int64
	for _, id := range order {
		last := batch[byTask[id][len(byTask[id])-1]]
		var fields change.Fields
		var checklist json.RawMessage
		if !deleted[id] {
			var ok bool
			var err error
			fields, checklist, ok, err = decode(res, id)
			if err != nil {
				set(id, err)
				continue
			}
			if !ok {
				fields = nil // gone, or no longer accessible
			}
		}
		e, err := h.entity(last, member, id, fields, checklist)
		if err != nil {
			set(id, err)
			continue
		}
		ents, ids = append(ents, e), append(ids, id)
	}
	for i, err := range h.mirrors.Apply(ctx, ents...) {
		set(ids[i], err)
	}
	return errs
}

// decode reads one task's two batch results. ok is false when the task is
// not found (Bitrix24 answers "result": [] for a missing or inaccessible task).
func decode(res *bitrix.BatchResult, id int64) (fields change.Fields, checklist json.RawMessage, ok bool, err error) {
	var wrap struct {
		Task json.RawMessage `json:"task"`
	}
	if err := res.Decode(fmt.Sprint("t", id), &wrap); err != nil {
		if errors.Is(err, bitrix.KindNotFound) {
			return nil, nil, false, nil
		}
		return nil, nil, false, bitrixport.Classify(err)
	}
	var t bitrix.Task
	if len(wrap.Task) == 0 || json.Unmarshal(wrap.Task, &t) != nil || len(t.Fields) == 0 {
		return nil, nil, false, nil
	}
	if err := res.Decode(fmt.Sprint("c", id), &checklist); err != nil {
		if !errors.Is(err, bitrix.KindNotFound) { // an empty checklist is "result": []
			return nil, nil, false, bitrixport.Classify(err)
		}
		checklist = json.RawMessage("[]")
	}
	return change.Fields(t.Fields), checklist, true, nil
}

// entity describes one task's mirror write: the flattened fields (with
// the checklist) are what is hashed and diffed; nil fields mark it
// deleted.
func (h *Handler) entity(m *consumer.Message[*eventsv1.Envelope], member string, id int64, fields change.Fields, checklist json.RawMessage) (mirror.Entity, error) {
	var flat change.Fields
	if fields != nil {
		var err error
		if flat, err = store.Flatten(fields, checklist); err != nil {
			return mirror.Entity{}, consumer.Permanent(err)
		}
	}
	return mirror.Entity{
		MemberID: member, Type: EntityType, ID: fmt.Sprint(id), EventID: m.EventID, Fields: flat,
		Lock: func(ctx context.Context, tx pgx.Tx) (mirror.Snapshot, error) {
			snap, err := store.LockTask(ctx, tx, member, id)
			return mirror.Snapshot{Live: snap.Live(), Hash: snap.Hash, Fields: snap.Flat}, err
		},
		Save: func(ctx context.Context, tx pgx.Tx, hash string) error {
			if fields == nil {
				return store.SaveTask(ctx, tx, store.Task{MemberID: member, ID: id, SourceEventID: m.EventID})
			}
			var t bitrix.Task
			raw, _ := json.Marshal(fields)
			_ = json.Unmarshal(raw, &t)
			return store.SaveTask(ctx, tx, store.Task{MemberID: member, ID: id, Fields: fields, Checklist: checklist,
				Hash: hash, SourceEventID: m.EventID, Title: t.Title, Status: t.Status,
				ResponsibleID: int64(t.ResponsibleID), Deadline: t.Deadline})
		},
	}, nil
}
