// Package mirror is the step every syncing consumer runs after it fetched
// an entity from the portal: lock the entity's mirror row, compare the new
// state's hash with the stored one, save the new state, diff the two into
// a DomainChange and add it to the outbox in the same transaction, and
// once committed flush the outbox so the change is published at once.
//
// The service keeps what only it knows (its table, its columns, extra
// reasons not to publish) in the Entity's callbacks; the order of the
// steps, the skip reasons and the change message are the same for all.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
)

// Skip reasons Apply gives (consumer.Skip) when it publishes nothing.
const (
	ReasonNoChange       = "no change"
	ReasonAlreadyDeleted = "already deleted"
)

// Snapshot is an entity's mirror row as Lock found it.
type Snapshot struct {
	// Live is true when the row exists and is not a deletion marker.
	Live bool
	// Hash is the stored state's change.Hash.
	Hash string
	// Fields is the stored state, the "before" of the diff.
	Fields change.Fields
}

// Entity is one entity's new state and how its service stores it.
type Entity struct {
	// MemberID, Type and ID name the entity (the DomainChange's member,
	// entity type and entity id). Required.
	MemberID, Type, ID string
	// EventID is the event that caused the fetch; it becomes the change's
	// source event. Required.
	EventID string
	// Fields is the entity's new state, the "after" of the diff; nil means
	// it is gone from the portal (deleted or no longer accessible).
	Fields change.Fields
	// Volatile fields are neither hashed nor diffed (a signed download URL
	// that differs per fetch is not a change).
	Volatile []string
	// Lock serialises work on the entity for the rest of tx and returns
	// its mirror row. Required.
	Lock func(ctx context.Context, tx pgx.Tx) (Snapshot, error)
	// Save writes the new state with its hash, or the deletion marker when
	// Fields is nil (hash is then ""). Required.
	Save func(ctx context.Context, tx pgx.Tx, hash string) error
	// Check, when set, runs after Save and may still decide not to publish
	// (the change is the echo of an own write, a sync lock is set): a
	// non-empty skip commits the saved state without a change. An error
	// rolls everything back.
	Check func(ctx context.Context, tx pgx.Tx, before Snapshot) (skip string, err error)
}

func (e Entity) validate() error {
	if e.MemberID == "" || e.Type == "" || e.ID == "" || e.EventID == "" || e.Lock == nil || e.Save == nil {
		return errors.New("mirror: entity needs MemberID, Type, ID, EventID, Lock and Save")
	}
	return nil
}

// Mirror runs the step for one service: its database, its outbox table
// and the relay that publishes it.
type Mirror struct {
	pool  *pgxpool.Pool
	table outbox.Table
	relay *outbox.Relay
	now   func() time.Time
}

// New returns a Mirror writing to pool and table. relay may be nil: the
// relay loop then publishes the changes on its next tick.
func New(pool *pgxpool.Pool, table outbox.Table, relay *outbox.Relay) *Mirror {
	return &Mirror{pool: pool, table: table, relay: relay, now: time.Now}
}

// WithClock returns a copy of m whose changes are stamped by now (tests).
func (m *Mirror) WithClock(now func() time.Time) *Mirror {
	c := *m
	c.now = now
	return &c
}

// Apply mirrors each entity in its own transaction and, when at least one
// change was written, flushes the outbox once after the last commit. The
// result for each entity (same index) is nil when a change was written,
// consumer.Skip (ReasonNoChange, ReasonAlreadyDeleted or Check's reason)
// when there was nothing to publish, or the error that rolled its
// transaction back. A failed flush is only logged (by the relay): the rows
// are committed and the relay publishes them later.
func (m *Mirror) Apply(ctx context.Context, entities ...Entity) []error {
	errs := make([]error, len(entities))
	changed := false
	var mark outbox.Mark // where the first committed change starts
	for i, e := range entities {
		errs[i] = m.write(ctx, e, &mark)
		changed = changed || errs[i] == nil
	}
	if changed && m.relay != nil {
		m.relay.FlushAfterCommit(ctx, mark)
	}
	return errs
}

// write runs lock → hash → save → check → diff → outbox in one
// transaction.
func (m *Mirror) write(ctx context.Context, e Entity, mark *outbox.Mark) error {
	if err := e.validate(); err != nil {
		return consumer.Permanent(err)
	}
	var skip error
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		before, err := e.Lock(ctx, tx)
		if err != nil {
			return err
		}
		hash := ""
		if e.Fields == nil {
			if !before.Live {
				skip = consumer.Skip(ReasonAlreadyDeleted)
				return nil
			}
		} else {
			hash = change.Hash(e.Fields, e.Volatile...)
			if before.Live && before.Hash == hash {
				skip = consumer.Skip(ReasonNoChange)
				return nil
			}
		}
		if err := e.Save(ctx, tx, hash); err != nil {
			return err
		}
		if e.Check != nil {
			reason, err := e.Check(ctx, tx, before)
			if err != nil {
				return err
			}
			if reason != "" {
				skip = consumer.Skip(reason)
				return nil
			}
		}
		dc := change.Build(e.MemberID, e.Type, e.ID, before.Fields, e.Fields, before.Live, e.EventID, m.now(), e.Volatile...)
		data, err := proto.Marshal(dc)
		if err != nil {
			return consumer.Permanent(fmt.Errorf("mirror: encode change: %w", err))
		}
		return m.table.Add(ctx, tx, mark, outbox.Message{MsgID: dc.GetId(), Subject: change.Subject(dc), Data: data,
			Header: map[string][]string{eventbus.HeaderContentType: {eventbus.ContentTypeProtobuf}}})
	})
	if err != nil {
		// The database not answering is not the event's fault: the
		// runtime pauses instead of spending a delivery.
		return consumer.ClassifyPostgres(fmt.Errorf("mirror %s %s: %w", e.Type, e.ID, err))
	}
	return skip
}
