package telephony

import (
	"context"

	"github.com/b24hub/b24hub/services/telephony/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the PostgreSQL schema the telephony service owns and migrates.
const Schema = store.Schema

// Migrate applies the service's pending schema migrations (embedded SQL,
// postgres.Migrate) to pool's database and returns. It serialises on an
// advisory lock, so replicas and a migration Job may run it at once, and
// it is a no-op when the schema is current. `telephony migrate` runs it on
// its own; the service also runs it when it starts.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return store.Migrate(ctx, pool)
}
