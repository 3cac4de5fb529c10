package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumer/outbox"
	"github.com/jackc/pgx/v5"
)

// This file is deal-sync's hot path: one batch of one portal's deals in
// one transaction, in four round trips whatever the batch's size (begin;
// locks and snapshots; open own writes; every write and the commit's
// predecessor), instead of six per deal. BenchmarkThroughput
// (services/deal-sync) is what justifies it: see docs/benchmarks.md.

// Batch is one transaction holding the advisory locks of a batch's deals
// (the same locks LockDeal takes). Holding them across the portal fetch
// is what keeps each deal's updates in order across workers and replicas:
// a second fetch of a deal starts only after the first one's state is
// committed, so it sees that state or a newer one.
type Batch struct {
	tx     pgx.Tx
	member string
	q      pgx.Batch
	// The batch's upserts and outbox rows, each sent as one statement by
	// Commit: one plan and one execution on the server for every deal of
	// the batch, not one per deal.
	deals  dealRows
	out    []outbox.Message
	outCtx context.Context
	mark   outbox.Mark // where the outbox rows start, once Commit sent them
}

// dealRows are upserts of deals, column by column (see upsertDeals).
type dealRows struct {
	ids, categories, assignees                  []int64
	fields                                      [][]byte
	hashes, titles, stages, opportunities, curs []string
	modified                                    []*time.Time
	sources                                     []string
}

// RawSnapshot is a deal's stored state, its fields still encoded (decoded
// only when the hash says they changed).
type RawSnapshot struct {
	Exists, Deleted bool
	Hash            string
	raw             []byte
}

// Live reports whether the deal exists and is not deleted.
func (s RawSnapshot) Live() bool { return s.Exists && !s.Deleted }

// Fields decodes the stored fields.
func (s RawSnapshot) Fields() (change.Fields, error) {
	if !s.Exists {
		return nil, nil
	}
	var f change.Fields
	if err := json.Unmarshal(s.raw, &f); err != nil {
		return nil, fmt.Errorf("store: deal fields: %w", err)
	}
	return f, nil
}

// BeginBatch starts the transaction, locks the deals ids of member (in
// ascending order, so two batches never deadlock) and returns their
// snapshots. The caller must End the batch.
func (s *Store) BeginBatch(ctx context.Context, member string, ids []int64) (*Batch, map[int64]RawSnapshot, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("store: begin: %w", err)
	}
	b := &Batch{tx: tx, member: member}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var q pgx.Batch
	q.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, d)) FROM unnest($2::bigint[]) WITH ORDINALITY AS u(d, n) ORDER BY n`, member, sorted)
	q.Queue(`SELECT deal_id, fields, snapshot_hash, deleted FROM deal_sync.deals WHERE member_id = $1 AND deal_id = ANY($2)`, member, sorted)
	res := tx.SendBatch(ctx, &q)
	snaps := make(map[int64]RawSnapshot, len(sorted))
	_, err = res.Exec()
	if err == nil {
		var rows pgx.Rows
		rows, err = res.Query()
		if err == nil {
			for rows.Next() {
				var id int64
				var s RawSnapshot
				if err = rows.Scan(&id, &s.raw, &s.Hash, &s.Deleted); err != nil {
					break
				}
				s.Exists = true
				snaps[id] = s
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("store: lock deals: %w", err)
	}
	return b, snaps, nil
}

// OpenWrites are own writes of some deals that may still explain a
// change, newest first per deal.
type OpenWrites map[int64][]openWrite

type openWrite struct {
	id     string
	fields change.Fields
}

// OpenWrites returns the open own writes of ids newer than ttl (see
// ConsumeEcho). Call it after the fetch: a write registered meanwhile is
// then seen.
func (b *Batch) OpenWrites(ctx context.Context, ids []int64, ttl time.Duration) (OpenWrites, error) {
	out := OpenWrites{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := b.tx.Query(ctx, `SELECT deal_id, command_id, fields FROM deal_sync.own_writes
		WHERE member_id = $1 AND deal_id = ANY($2) AND consumed_at IS NULL AND status <> 'noop'
		  AND written_at > now() - $3::interval
		ORDER BY written_at DESC`, b.member, ids, ttl.String())
	if err != nil {
		return nil, fmt.Errorf("store: own writes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var w openWrite
		var raw []byte
		if err := rows.Scan(&id, &w.id, &raw); err != nil {
			return nil, fmt.Errorf("store: own writes: %w", err)
		}
		if err := json.Unmarshal(raw, &w.fields); err != nil {
			return nil, fmt.Errorf("store: own write %s: %w", w.id, err)
		}
		out[id] = append(out[id], w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: own writes: %w", err)
	}
	return out, nil
}

// Echo returns the newest open write of deal id that explains the change
// of the changed fields to now, or "" (see ConsumeEcho). The write is
// marked consumed with the batch's writes.
func (b *Batch) Echo(w OpenWrites, id int64, changed []string, now change.Fields) string {
	for i, c := range w[id] {
		if explains(c.fields, changed, now) {
			w[id] = slices.Delete(w[id], i, i+1)
			b.q.Queue(`UPDATE deal_sync.own_writes SET consumed_at = now() WHERE command_id = $1`, c.id)
			return c.id
		}
	}
	return ""
}

// Save queues d's upsert (or deletion marker) with the batch's writes.
func (b *Batch) Save(d Deal) error {
	if d.Fields == nil {
		b.q.Queue(`UPDATE deal_sync.deals SET deleted = true, source_event_id = $3, updated_at = now()
			WHERE member_id = $1 AND deal_id = $2`, d.MemberID, d.ID, d.SourceEventID)
		return nil
	}
	raw := d.Raw
	if raw == nil {
		var err error
		if raw, err = json.Marshal(d.Fields); err != nil {
			return fmt.Errorf("store: deal %d fields: %w", d.ID, err)
		}
	}
	var modify *time.Time
	if !d.DateModify.IsZero() {
		modify = &d.DateModify
	}
	if d.MemberID != b.member {
		return fmt.Errorf("store: deal %d of %s in a batch of %s", d.ID, d.MemberID, b.member)
	}
	r := &b.deals
	r.ids, r.fields, r.hashes = append(r.ids, d.ID), append(r.fields, raw), append(r.hashes, d.Hash)
	r.titles, r.stages, r.categories = append(r.titles, d.Title), append(r.stages, d.StageID), append(r.categories, d.CategoryID)
	r.opportunities, r.curs, r.assignees = append(r.opportunities, d.Opportunity), append(r.curs, d.CurrencyID), append(r.assignees, d.AssignedByID)
	r.modified, r.sources = append(r.modified, modify), append(r.sources, d.SourceEventID)
	return nil
}

// upsertDeals saves the states of many deals of one portal in one
// statement ($1 member, then one array per column); like upsertDeal.
const upsertDeals = `INSERT INTO deal_sync.deals
		(member_id, deal_id, fields, snapshot_hash, deleted, title, stage_id, category_id, opportunity,
		 currency_id, assigned_by_id, date_modify, source_event_id, updated_at)
		SELECT $1, d, f, h, false, t, s, c, o, cur, a, m, src, now()
		FROM unnest($2::bigint[], $3::jsonb[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],
			$9::text[], $10::bigint[], $11::timestamptz[], $12::text[]) AS u(d, f, h, t, s, c, o, cur, a, m, src)` + onDealConflict

// Publish queues msgs into the outbox with the batch's writes.
func (b *Batch) Publish(ctx context.Context, msgs ...outbox.Message) error {
	for _, m := range msgs {
		if m.MsgID == "" || m.Subject == "" {
			return errors.New("outbox: MsgID and Subject are required")
		}
	}
	if b.outCtx == nil {
		b.outCtx = ctx // the trace context the rows carry: the batch's
	}
	b.out = append(b.out, msgs...)
	return nil
}

// Commit sends every queued write in one round trip and commits.
func (b *Batch) Commit(ctx context.Context) error {
	if r := b.deals; len(r.ids) == 1 {
		b.q.Queue(upsertDeal, b.member, r.ids[0], r.fields[0], r.hashes[0], r.titles[0], r.stages[0], r.categories[0],
			r.opportunities[0], r.curs[0], r.assignees[0], r.modified[0], r.sources[0])
	} else if len(r.ids) > 1 {
		b.q.Queue(upsertDeals, b.member, r.ids, r.fields, r.hashes, r.titles, r.stages, r.categories,
			r.opportunities, r.curs, r.assignees, r.modified, r.sources)
	}
	if len(b.out) > 0 {
		if err := Outbox.Queue(b.outCtx, &b.q, &b.mark, b.out...); err != nil {
			_ = b.tx.Rollback(context.WithoutCancel(ctx))
			return fmt.Errorf("store: outbox: %w", err)
		}
	}
	if b.q.Len() > 0 {
		if err := b.tx.SendBatch(ctx, &b.q).Close(); err != nil {
			_ = b.tx.Rollback(context.WithoutCancel(ctx))
			return fmt.Errorf("store: write deals: %w", err)
		}
	}
	if err := b.tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Mark is where the batch's outbox rows start, for the relay's
// FlushAfterCommit; the zero Mark before Commit or without rows.
func (b *Batch) Mark() outbox.Mark { return b.mark }

// Rollback ends the batch without writing; it is a no-op after Commit.
func (b *Batch) Rollback(ctx context.Context) {
	_ = b.tx.Rollback(context.WithoutCancel(ctx))
}
