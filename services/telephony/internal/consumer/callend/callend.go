// Package callend is telephony's consumer of ONVOXIMPLANTCALLEND.
//
// The event carries the CALL_ID only; the handler reads the call's row from
// voximplant.statistic.get. A recording appears some seconds after the call
// ends (RECORD_FILE_ID is empty until then), so when one is expected — an
// answered call (CALL_FAILED_CODE "200") that lasted — and not yet there,
// the handler asks the runtime for a short redelivery (consumer.RetryAfter),
// up to RecordingWait after the call; then it records "none". A recording is
// kept as its Disk file id (RECORD_FILE_ID): its download URL carries a live
// auth token, so it is never stored or published; the service resolves a
// fresh one when asked (Recordings). The call is mirrored with its
// codes kept as strings ("603-S", "OTHER") and a domain change is published
// on b24.changes.call.<member_id>.<call id>.
package callend

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumer/mirror"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/telephony/internal/store"
	"github.com/jackc/pgx/v5"
)

// Durable is the consumer's durable name. PUBLIC API: renaming it makes a
// new consumer that reprocesses every call the stream still holds.
const Durable = "telephony"

// EntityType is the DomainChange entity type.
const EntityType = "call"

// Event is the raw event this consumer handles.
const Event = "ONVOXIMPLANTCALLEND"

// Record statuses stored in calls.record_status and the RECORD_STATUS field.
const (
	RecordPresent     = "present"
	RecordNone        = "none"
	RecordNotExpected = "not_expected"
)

// FieldRecordStatus is added to the statistics row in the mirror and the
// diff.
const FieldRecordStatus = "RECORD_STATUS"

// Spec is the consumer definition. MaxDeliver is higher than the default
// because waiting for a recording spends deliveries.
func Spec() consumer.Spec {
	return consumer.Spec{
		Durable:        Durable,
		Description:    "telephony: mirror finished calls with their recordings",
		FilterSubjects: eventbus.RawEventFilter(Event),
		MaxDeliver:     12,
	}
}

// Options tune the handler.
type Options struct {
	// RecordingWait is how long after the call's end event a missing
	// recording is waited for. Default 60s.
	RecordingWait time.Duration
	// RecordingPoll is the delay between looks. Default 10s.
	RecordingPoll time.Duration
}

// Handler handles ONVOXIMPLANTCALLEND.
type Handler struct {
	clients bitrixport.Clients
	mirrors *mirror.Mirror
	opt     Options
	now     func() time.Time
}

var _ consumer.Handler[*eventsv1.Envelope] = (*Handler)(nil)

// New returns a Handler; relay may be nil.
func New(clients bitrixport.Clients, st *store.Store, relay *outbox.Relay, opt Options) *Handler {
	if opt.RecordingWait == 0 {
		opt.RecordingWait = time.Minute
	}
	if opt.RecordingPoll == 0 {
		opt.RecordingPoll = 10 * time.Second
	}
	return &Handler{clients: clients, mirrors: st.Mirror(relay), opt: opt, now: time.Now}
}

// errRecordingPending is the retry reason while a recording is awaited.
var errRecordingPending = errors.New("recording not there yet")

// Handle implements consumer.Handler.
func (h *Handler) Handle(ctx context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
	callID := m.EntityID
	if callID == "" {
		return consumer.Permanent(errors.New("ONVOXIMPLANTCALLEND without CALL_ID"))
	}
	client, err := h.clients.ClientFor(ctx, m.MemberID)
	if err != nil {
		return bitrixport.Classify(err)
	}
	waited := h.now().Sub(h.endedAt(m))
	rec, err := client.FindCall(ctx, callID)
	if errors.Is(err, bitrix.KindNotFound) {
		// Statistics can lag the event too.
		if waited < h.opt.RecordingWait {
			return consumer.RetryAfter(h.opt.RecordingPoll, bitrixport.Kinded{Err: err})
		}
		return consumer.Permanent(bitrixport.Kinded{Err: err})
	}
	if err != nil {
		return bitrixport.Classify(err)
	}

	status := RecordNotExpected
	switch {
	case rec.RecordFileID != 0:
		status = RecordPresent
	case expectsRecording(rec):
		if waited < h.opt.RecordingWait {
			return consumer.RetryAfter(h.opt.RecordingPoll, errRecordingPending)
		}
		status = RecordNone
	}
	return h.mirror(ctx, m, rec, status)
}

// expectsRecording: an answered call that lasted has a recording (when the
// line records at all; a line that never records ends as "none" after the
// wait, which is the honest answer).
func expectsRecording(r *bitrix.CallRecord) bool {
	return r.CallFailedCode == "200" && r.CallDuration > 0
}

// endedAt is when the call ended, as well as the platform knows: when the
// ingress received the event, else when the stream stored it.
func (h *Handler) endedAt(m *consumer.Message[*eventsv1.Envelope]) time.Time {
	if t := m.Payload.GetReceivedAt(); t.IsValid() && t.AsTime().Unix() > 0 {
		return t.AsTime()
	}
	if !m.Published.IsZero() {
		return m.Published
	}
	return h.now()
}

func (h *Handler) mirror(ctx context.Context, m *consumer.Message[*eventsv1.Envelope], rec *bitrix.CallRecord, status string) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return consumer.Permanent(err)
	}
	var fields change.Fields
	if err := json.Unmarshal(raw, &fields); err != nil {
		return consumer.Permanent(err)
	}
	fields[FieldRecordStatus], _ = json.Marshal(status)
	err = h.mirrors.Apply(ctx, mirror.Entity{
		MemberID: m.MemberID, Type: EntityType, ID: rec.CallID, EventID: m.EventID, Fields: fields,
		Lock: func(ctx context.Context, tx pgx.Tx) (mirror.Snapshot, error) {
			snap, err := store.LockCall(ctx, tx, m.MemberID, rec.CallID)
			return mirror.Snapshot{Live: snap.Exists, Hash: snap.Hash, Fields: snap.Fields}, err
		},
		Save: func(ctx context.Context, tx pgx.Tx, hash string) error {
			return store.SaveCall(ctx, tx, store.Call{MemberID: m.MemberID, CallID: rec.CallID, CallType: rec.CallType, FailedCode: rec.CallFailedCode,
				FailedReason: rec.CallFailedReason, PortalUserID: int64(rec.PortalUserID), PortalNumber: rec.PortalNumber,
				PhoneNumber: rec.PhoneNumber, DurationSec: int64(rec.CallDuration), StartDate: rec.CallStartDate, Cost: rec.Cost,
				CostCurrency: rec.CostCurrency, CRMEntityType: rec.CRMEntityType, CRMEntityID: int64(rec.CRMEntityID),
				CRMActivityID: int64(rec.CRMActivityID), RecordFileID: int64(rec.RecordFileID), RecordStatus: status,
				Fields: fields, Hash: hash, SourceEventID: m.EventID})
		},
	})[0]
	if err != nil {
		return err
	}
	m.Logger.InfoContext(ctx, "call mirrored", "record_status", status, "failed_code", rec.CallFailedCode)
	return nil
}
