// Package offline drains a portal's offline-event queue into the raw stream
// without ever losing a record (§2 of the Bitrix24 reference):
//
//  1. event.offline.get with clear=0 reserves a batch under a process_id,
//     which is stored before anything else happens;
//  2. every record is published to the raw stream (source=offline) and its
//     PubAck awaited;
//  3. only then event.offline.clear removes the published records; records
//     that cannot be turned into an event go to event.offline.error.
//
// A crash or a broker outage between 1 and 3 leaves the batch reserved on
// the portal and its process_id in the store; the next run re-reads it by
// process_id and publishes it again (the message ids are deterministic, so
// JetStream drops what already arrived).
package offline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/subscriptions/internal/rawevent"
)

// Client is the part of the REST client the pump needs; *bitrix.Client
// implements it.
type Client interface {
	OfflineEvents(ctx context.Context, q bitrix.OfflineQuery) (*bitrix.OfflineBatch, error)
	ClearOfflineEvents(ctx context.Context, processID string, ids []bitrix.ID, messageIDs []string) error
	ErrorOfflineEvents(ctx context.Context, processID string, messageIDs []string) error
}

var _ Client = (*bitrix.Client)(nil)

// Batches remembers reserved batches; *store.Store implements it.
type Batches interface {
	PendingBatch(ctx context.Context, memberID string) (string, bool, error)
	SetPendingBatch(ctx context.Context, memberID, processID string) error
	ClearPendingBatch(ctx context.Context, memberID, processID string) error
}

// Portal identifies the portal being drained.
type Portal struct {
	MemberID       string
	Domain         string
	ClientEndpoint string
}

// Stats is what one Drain did.
type Stats struct {
	Batches   int `json:"batches"`
	Published int `json:"published"`
	Errored   int `json:"errored"`
}

// Pump drains offline queues.
type Pump struct {
	pub     rawevent.Publisher
	batches Batches
	now     func() time.Time
	// Limit is the batch size asked for (default 50).
	Limit int
	// MaxBatches bounds one Drain, so one busy portal cannot starve the
	// others (default 20).
	MaxBatches int
}

// New returns a Pump.
func New(pub rawevent.Publisher, batches Batches) *Pump {
	return &Pump{pub: pub, batches: batches, now: time.Now, Limit: 50, MaxBatches: 20}
}

// Drain finishes the portal's pending batch, if any, then reserves and
// publishes batches until the queue is empty or MaxBatches is reached.
func (p *Pump) Drain(ctx context.Context, portal Portal, c Client) (Stats, error) {
	var st Stats
	pid, ok, err := p.batches.PendingBatch(ctx, portal.MemberID)
	if err != nil {
		return st, err
	}
	if ok {
		b, err := c.OfflineEvents(ctx, bitrix.OfflineQuery{ProcessID: pid, Limit: p.Limit})
		if err != nil {
			return st, fmt.Errorf("offline: re-read batch: %w", err)
		}
		if err := p.process(ctx, portal, c, pid, b.Events, &st); err != nil {
			return st, err
		}
	}
	for st.Batches < p.MaxBatches {
		b, err := c.OfflineEvents(ctx, bitrix.OfflineQuery{Limit: p.Limit})
		if err != nil {
			return st, fmt.Errorf("offline: event.offline.get: %w", err)
		}
		if len(b.Events) == 0 {
			return st, nil
		}
		if b.ProcessID == "" {
			// clear=0 always reserves; a portal that cleared anyway lost
			// nothing yet only because we still hold the records: publish
			// them, there is nothing to clear.
			return st, p.publishAll(ctx, portal, b.Events, &st)
		}
		if err := p.batches.SetPendingBatch(ctx, portal.MemberID, b.ProcessID); err != nil {
			return st, err
		}
		if err := p.process(ctx, portal, c, b.ProcessID, b.Events, &st); err != nil {
			return st, err
		}
		if len(b.Events) < p.Limit {
			return st, nil
		}
	}
	return st, nil
}

// process publishes one reserved batch, then clears and errors its records.
func (p *Pump) process(ctx context.Context, portal Portal, c Client, pid string, events []bitrix.OfflineEvent, st *Stats) error {
	st.Batches++
	var done []bitrix.ID
	var bad []string
	for _, e := range events {
		msg, err := rawevent.Build(Event(portal, e), p.now())
		if err != nil {
			bad = append(bad, e.MessageID)
			continue
		}
		if _, err := p.pub.Publish(ctx, msg); err != nil {
			// Leave the batch reserved: the next run re-reads it.
			return fmt.Errorf("offline: publish: %w", err)
		}
		done = append(done, e.ID)
		st.Published++
	}
	if len(done) > 0 {
		if err := c.ClearOfflineEvents(ctx, pid, done, nil); err != nil {
			return fmt.Errorf("offline: event.offline.clear: %w", err)
		}
	}
	if bad = validMessageIDs(bad); len(bad) > 0 {
		if err := c.ErrorOfflineEvents(ctx, pid, bad); err != nil {
			return fmt.Errorf("offline: event.offline.error: %w", err)
		}
		st.Errored += len(bad)
	}
	return p.batches.ClearPendingBatch(ctx, portal.MemberID, pid)
}

func (p *Pump) publishAll(ctx context.Context, portal Portal, events []bitrix.OfflineEvent, st *Stats) error {
	st.Batches++
	var errs []error
	for _, e := range events {
		msg, err := rawevent.Build(Event(portal, e), p.now())
		if err == nil {
			_, err = p.pub.Publish(ctx, msg)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st.Published++
	}
	return errors.Join(errs...)
}

// validMessageIDs keeps the ids event.offline.error accepts (32 chars, §2.3).
func validMessageIDs(ids []string) []string {
	out := ids[:0]
	for _, id := range ids {
		if len(id) == 32 {
			out = append(out, id)
		}
	}
	return out
}

// MessageID is the Nats-Msg-Id of an offline record. It is derived from
// MESSAGE_ID plus the record ID: MESSAGE_ID alone is md5(event|data), the
// same for every later change of the same entity once the earlier record is
// cleared (§2.1), so it would make JetStream drop a real change as a
// duplicate; the record ID is unique per queued change and stable when a
// reserved batch is re-read.
func MessageID(memberID string, e bitrix.OfflineEvent) string {
	h := sha256.New()
	for _, s := range []string{"offline/v1", memberID, e.MessageID, e.ID.String()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Event turns an offline record into a recovered event.
func Event(portal Portal, e bitrix.OfflineEvent) rawevent.Event {
	var data map[string]any
	if raw := bytes.TrimSpace(e.EventData); len(raw) > 0 && raw[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		_ = dec.Decode(&data)
	}
	ts, _ := time.Parse(time.RFC3339, strings.TrimSpace(e.Timestamp))
	return rawevent.Event{
		MessageID: MessageID(portal.MemberID, e), MemberID: portal.MemberID, Domain: portal.Domain,
		ClientEndpoint: portal.ClientEndpoint, Name: strings.ToUpper(e.EventName), Data: data, TS: ts,
		Source: eventsv1.Source_SOURCE_OFFLINE,
	}
}
