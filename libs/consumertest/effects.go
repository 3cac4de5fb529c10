package consumertest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SchemaEffects returns an Effects func fingerprinting every table of a
// PostgreSQL schema — each table's row count and a digest of its rows —
// except the migration version tables. A consumer whose effects are rows
// in its own schema passes it as Case.Effects and keeps it whatever tables
// it grows: a redelivery or a duplicate that inserts, updates or deletes a
// row changes the fingerprint.
func SchemaEffects(pool *pgxpool.Pool, schema string) func(t testing.TB) string {
	return func(t testing.TB) string {
		t.Helper()
		ctx := context.Background()
		rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables
			WHERE table_schema = $1 AND table_type = 'BASE TABLE' AND table_name NOT LIKE '%schema_version'
			ORDER BY table_name`, schema)
		if err != nil {
			t.Fatal(err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, table := range tables {
			var n int
			var digest string
			name := pgx.Identifier{schema, table}.Sanitize()
			if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '')
				FROM `+name+` r`).Scan(&n, &digest); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s: %d rows %s; ", table, n, digest)
		}
		return b.String()
	}
}
