// Package schema holds the monitor's PostgreSQL migrations and applies them
// to the "monitor" schema.
package schema

import (
	"context"
	"embed"
	"io/fs"

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Name is the PostgreSQL schema the monitor owns.
const Name = "monitor"

//go:embed migrations/*.sql
var embedded embed.FS

// Migrations holds the schema's migrations, NNN_name.sql at its root: the
// service's declaration hands them to libs/svcmain, which applies them.
var Migrations, _ = fs.Sub(embedded, "migrations") // a literal, existing directory: never fails

// Migrate applies every pending migration. It is safe to run from several
// replicas at once (tern takes an advisory lock) and a no-op when current.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return postgres.Migrate(ctx, pool, Name, Migrations)
}
