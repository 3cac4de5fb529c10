package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/destinations/internal/webhook"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotReceived refuses a replay of a message the destination does not
// receive (outside its stream or filter subjects).
var ErrNotReceived = errors.New("delivery: the destination does not receive this message")

// Replay delivers one stored message again, to this destination only, in
// one attempt: the same body, signature scheme and webhook-id as its first
// delivery, so a receiver that already has it de-duplicates it. The attempt
// is reported to the ledger like any other. It does not wait for a pause
// and does not go through the durable, so it neither reorders nor holds
// back the destination's queue.
//
// replayID, when set, is the event id the outcome is reported under.
func (r *Runner) Replay(ctx context.Context, sm *jetstream.RawStreamMsg, replayID string) (id string, res webhook.Result, err error) {
	if !r.Receives(sm.Subject) {
		return "", webhook.Result{}, fmt.Errorf("%w: %s is not in %v", ErrNotReceived, sm.Subject, r.d.Subjects)
	}
	m := message{subject: sm.Subject, header: sm.Header, data: sm.Data, seq: sm.Sequence, time: sm.Time,
		replay: "replay" + strconv.FormatInt(time.Now().UnixNano(), 36), replayID: replayID}
	if m.header == nil {
		m.header = nats.Header{}
	}
	id = deliveryID(r.d.Name, m.header, m.subject, m.seq)
	body, err := encodeBody(m.subject, m.data, m.time)
	if err != nil {
		return id, webhook.Result{}, err
	}
	if err := r.lim.Wait(ctx); err != nil {
		return id, webhook.Result{}, err
	}
	res = r.sender.Send(ctx, webhook.Request{URL: r.d.URL.String(), ID: id, Body: body, Keys: r.d.Secrets, Header: traceHeader(ctx, m.header)}, r.d.Timeout)
	st := eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE
	kind := ""
	if res.Err != nil {
		st, kind = eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, retryKind(res)
		if res.Permanent {
			st, kind = eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, "permanent"
		}
	}
	r.outcome(ctx, m, st, 1, res, kind)
	return id, res, nil
}

// Receives reports whether subject is one the destination receives.
func (r *Runner) Receives(subject string) bool {
	for _, f := range r.d.Subjects {
		if subjectMatches(f, subject) {
			return true
		}
	}
	return false
}

// Stream is the stream the destination reads.
func (r *Runner) Stream() string { return r.d.Stream }

func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || f != "*" && f != st[i] {
			return false
		}
	}
	return len(ft) == len(st)
}
