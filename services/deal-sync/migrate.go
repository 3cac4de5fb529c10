package dealsync

import (
	"context"

	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the PostgreSQL schema the deal-sync service owns and migrates.
const Schema = store.Schema

// Migrate applies the service's pending schema migrations (embedded SQL,
// postgres.Migrate) to pool's database and returns. It serialises on an
// advisory lock, so replicas and a migration Job may run it at once, and
// it is a no-op when the schema is current. `deal-sync migrate` runs it on
// its own; the service also runs it when it starts.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return store.Migrate(ctx, pool)
}
