package svcmain

import (
	"context"
	"io"

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/b24hub/b24hub/libs/telemetry"
)

// migrate applies the schema migrations and returns. It needs PostgreSQL
// only (B24HUB_DATABASE_URL): no NATS, no other setting.
func (c Command) migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := telemetry.NewLogger(stdout, telemetry.ParseLevel(getenv("B24HUB_LOG_LEVEL")), c.Name)
	maxConns, err := postgres.MaxConnsFromEnv(getenv)
	if err != nil {
		return err
	}
	if c.Schema == "" {
		log.InfoContext(ctx, c.Name+" owns no schema; nothing to migrate")
		return nil
	}
	dbURL := EnvOr(getenv, "B24HUB_DATABASE_URL", postgres.DefaultURL)
	pool, err := postgres.Open(ctx, dbURL, c.Create == CreateAlways || dbURL == postgres.DefaultURL, postgres.WithMaxConns(maxConns))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := c.Migrate(ctx, pool); err != nil {
		return err
	}
	log.InfoContext(ctx, "schema migrated", "schema", c.Schema, "database", postgres.Redact(dbURL))
	return nil
}

// EnvOr returns getenv(key), or def when it is empty.
func EnvOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
