// Package outbox is a transactional outbox on PostgreSQL for consumers that
// mirror state and publish what changed. A handler adds its messages in the
// same transaction as its mirror write, so a crash between the commit and
// the publish cannot lose a domain change: the rows stay until a flush
// publishes them. Each message carries a deterministic Nats-Msg-Id, so a
// message published twice (a flush that crashed before marking its rows) is
// stored once by JetStream and de-duplicated by consumers.
//
// The table lives in the service's own schema and the package owns it:
// Table.Migrate creates and upgrades it from the SQL embedded here, with
// its own version table, so no service copies its definition.
package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
)

//go:embed migrations/*.sql
var embedded embed.FS

var migrations, _ = fs.Sub(embedded, "migrations") // a literal, existing directory: never fails

// Component is the outbox table's migrations as a postgres.Component. A
// service hands its migrations to libs/postgres as
// postgres.WithComponents(own, outbox.Component), so whatever migrates its
// schema (the service at start, its migrate command, the deploy Job)
// creates and upgrades the outbox table too, after the service's own
// migrations (see Table.Migrate for a hand-over from an older table).
var Component = postgres.Component{Name: "outbox", Migrations: migrations}

// Message is one message to publish after commit.
type Message struct {
	// MsgID is the Nats-Msg-Id; required and deterministic.
	MsgID string
	// Subject is required.
	Subject string
	// Data is the payload.
	Data []byte
	// Header holds extra headers. Add sets the trace context of its ctx.
	Header nats.Header
}

// Table is the outbox table of one schema, created by its Migrate.
type Table struct {
	schema string
	name   string // quoted, schema-qualified
}

// In returns the outbox table of schema.
func In(schema string) Table {
	return Table{schema: schema, name: pgx.Identifier{schema, "outbox"}.Sanitize()}
}

// Migrate creates or upgrades the table in its schema (creating the
// schema if needed) from the package's embedded migrations, recorded in
// <schema>.outbox_schema_version apart from the service's own. Run it
// after the service's migrations: a service whose earlier migrations
// created an outbox table itself hands it over by renaming it to
// outbox_handover in a migration of its own, and Migrate then moves every
// row of it, unpublished ones included, into the table it creates. Like
// postgres.Migrate it is safe to run from several replicas at once, and a
// no-op when the table is current.
func (t Table) Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := postgres.MigrateComponent(ctx, pool, t.schema, Component.Name, Component.Migrations); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// Mark is where the rows a transaction added start in the table: the
// lowest sequence number Add or Queue gave them, zero while none was
// added. Relay.FlushAfterCommit claims from there instead of from the
// table's first unpublished row: every published row leaves an entry in
// the unpublished-rows index until PostgreSQL vacuums the table, and a
// claim from the start walks all of them: 11.4 ms a claim on average over
// a minute at 1,000 events/s with autovacuum off, the largest PostgreSQL
// cost of tools/bench e2e (docs/benchmarks.md). The relay loop's periodic
// Flush still claims from the start, once a tick.
type Mark struct{ seq int64 }

// Seq is the lowest sequence number of the rows, zero when none was added.
func (m Mark) Seq() int64 { return m.seq }

// note lowers m to seq.
func (m *Mark) note(seq int64) {
	if m != nil && seq > 0 && (m.seq == 0 || seq < m.seq) {
		m.seq = seq
	}
}

// Add stores msgs in tx and lowers mark (may be nil) to their first row.
// The trace context of ctx travels with them, so the published messages
// continue the trace of the event that caused them.
func (t Table) Add(ctx context.Context, tx pgx.Tx, mark *Mark, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	sql, args, err := t.statement(ctx, msgs)
	if err != nil {
		return err
	}
	var seq int64
	if err := tx.QueryRow(ctx, sql, args...).Scan(&seq); err != nil {
		return fmt.Errorf("outbox: add: %w", err)
	}
	mark.note(seq)
	return nil
}

// Queue is Add for a pgx.Batch the caller sends inside its transaction
// (one round trip for a batch of writes); errors of the inserts come from
// the batch's results, and mark is lowered when they are read.
// Several messages are one INSERT of every row, in their order: the
// server plans and runs one statement instead of one per message.
func (t Table) Queue(ctx context.Context, b *pgx.Batch, mark *Mark, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	sql, args, err := t.statement(ctx, msgs)
	if err != nil {
		return err
	}
	b.Queue(sql, args...).QueryRow(func(row pgx.Row) error {
		var seq int64
		if err := row.Scan(&seq); err != nil {
			return err
		}
		mark.note(seq)
		return nil
	})
	return nil
}

// statement is the INSERT of msgs returning the first row's sequence
// number, with its arguments.
func (t Table) statement(ctx context.Context, msgs []Message) (string, []any, error) {
	if len(msgs) == 1 {
		args, err := t.row(ctx, msgs[0])
		if err != nil {
			return "", nil, err
		}
		return t.insert() + ` RETURNING seq`, args, nil
	}
	ids, subjects := make([]string, len(msgs)), make([]string, len(msgs))
	data, headers := make([][]byte, len(msgs)), make([][]byte, len(msgs))
	for i, m := range msgs {
		args, err := t.row(ctx, m)
		if err != nil {
			return "", nil, err
		}
		ids[i], subjects[i], data[i], headers[i] = m.MsgID, m.Subject, m.Data, args[3].([]byte)
	}
	return `WITH ins AS (INSERT INTO ` + t.name + ` (msg_id, subject, data, header)
		SELECT m, s, d, h FROM unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[]) WITH ORDINALITY AS u(m, s, d, h, n) ORDER BY n
		RETURNING seq) SELECT min(seq) FROM ins`, []any{ids, subjects, data, headers}, nil
}

func (t Table) insert() string {
	return `INSERT INTO ` + t.name + ` (msg_id, subject, data, header) VALUES ($1, $2, $3, $4)`
}

// row is m's column values, its headers with ctx's trace context.
func (t Table) row(ctx context.Context, m Message) ([]any, error) {
	if m.MsgID == "" || m.Subject == "" {
		return nil, errors.New("outbox: MsgID and Subject are required")
	}
	h := nats.Header{}
	for k, v := range m.Header {
		h[k] = v
	}
	eventbus.Propagator().Inject(ctx, eventbus.HeaderCarrier(h))
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("outbox: header: %w", err)
	}
	return []any{m.MsgID, m.Subject, m.Data, hj}, nil
}

// Relay publishes outbox rows. Several replicas may run one each: rows are
// claimed with FOR UPDATE SKIP LOCKED.
type Relay struct {
	table Table
	pool  *pgxpool.Pool
	pub   *eventbus.Publisher
	log   *slog.Logger
	// Retain is how long published rows are kept (for audit) before Run
	// deletes them. Default 24h.
	Retain time.Duration
}

// NewRelay returns a Relay publishing the rows of table with pub.
func NewRelay(table Table, pool *pgxpool.Pool, pub *eventbus.Publisher, log *slog.Logger) *Relay {
	return &Relay{table: table, pool: pool, pub: pub, log: log, Retain: 24 * time.Hour}
}

// Flush publishes unpublished rows, oldest first, up to 500, and marks them
// published. It returns how many it published. A publish failure stops the
// flush and is returned; the rows stay for the next flush.
func (r *Relay) Flush(ctx context.Context) (int, error) { return r.flush(ctx, 0) }

// flush is Flush of the rows from sequence number from on.
func (r *Relay) flush(ctx context.Context, from int64) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("outbox: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `SELECT seq, msg_id, subject, data, header FROM `+r.table.name+`
		WHERE published_at IS NULL AND seq >= $1 ORDER BY seq LIMIT 500 FOR UPDATE SKIP LOCKED`, from)
	if err != nil {
		return 0, fmt.Errorf("outbox: claim: %w", err)
	}
	type row struct {
		seq  int64
		msg  eventbus.Message
		hdrJ []byte
	}
	var claimed []row
	for rows.Next() {
		var x row
		if err := rows.Scan(&x.seq, &x.msg.MsgID, &x.msg.Subject, &x.msg.Data, &x.hdrJ); err != nil {
			rows.Close()
			return 0, fmt.Errorf("outbox: scan: %w", err)
		}
		claimed = append(claimed, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("outbox: claim: %w", err)
	}
	if len(claimed) == 0 {
		return 0, nil
	}
	// Publish concurrently (the publisher pipelines), then mark what was
	// confirmed.
	errs := make([]error, len(claimed))
	done := make(chan int, len(claimed))
	for i := range claimed {
		go func() {
			x := &claimed[i]
			h := nats.Header{}
			_ = json.Unmarshal(x.hdrJ, &h)
			pctx := eventbus.Propagator().Extract(ctx, eventbus.HeaderCarrier(h))
			x.msg.Header = h
			_, errs[i] = r.pub.Publish(pctx, x.msg)
			done <- i
		}()
	}
	for range claimed {
		<-done
	}
	var published []int64
	for i, x := range claimed {
		if errs[i] == nil {
			published = append(published, x.seq)
		}
	}
	if len(published) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE `+r.table.name+` SET published_at = now() WHERE seq = ANY($1)`, published); err != nil {
			return 0, fmt.Errorf("outbox: mark: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("outbox: commit: %w", err)
	}
	return len(published), errors.Join(errs...)
}

// FlushAfterCommit is Flush for a handler that just committed rows, from
// mark on (the zero Mark: from the first unpublished row): its own rows,
// and any other transaction's committed after them. Rows of a transaction
// still open are not waited for: that transaction flushes them itself. A
// failure is logged, not returned, since the rows are safe and the relay
// loop publishes them on its next tick.
func (r *Relay) FlushAfterCommit(ctx context.Context, mark Mark) {
	if _, err := r.flush(ctx, mark.seq); err != nil {
		r.log.WarnContext(ctx, "outbox flush after commit failed; the relay retries", "error", err.Error())
	}
}

// Pending returns the number of unpublished rows.
func (r *Relay) Pending(ctx context.Context) (int, error) {
	var n int
	err := r.pool.QueryRow(ctx, `SELECT count(*) FROM `+r.table.name+` WHERE published_at IS NULL`).Scan(&n)
	return n, err
}

// Run flushes every interval until ctx ends, and prunes rows published
// longer than Retain ago. It returns nil when ctx ends.
func (r *Relay) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			// A last flush so a drained consumer leaves nothing behind.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = r.Flush(fctx)
			cancel()
			return nil
		case <-t.C:
		}
		for {
			n, err := r.Flush(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.log.WarnContext(ctx, "outbox flush failed", "error", err.Error())
				}
				break
			}
			if n < 500 {
				break
			}
		}
		if time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			if _, err := r.pool.Exec(ctx, `DELETE FROM `+r.table.name+` WHERE published_at < now() - $1::interval`,
				r.Retain.String()); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "outbox prune failed", "error", err.Error())
			}
		}
	}
}
