// Package store is contact-mirror's PostgreSQL adapter (schema contact_mirror).
package store

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the service's PostgreSQL schema.
const Schema = "contact_mirror"

//go:embed migrations/*.sql
var embedded embed.FS

// Migrations holds the schema's migrations, NNN_name.sql at its root: the
// service's declaration hands them to libs/svcmain, which applies them.
var Migrations, _ = fs.Sub(embedded, "migrations") // a literal, existing directory: never fails

// Migrate applies the embedded migrations to Schema.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return postgres.Migrate(ctx, pool, Schema, Migrations)
}

// Contact is one mirrored contact. MemberID and ID identify it; Fields is
// the portal's whole answer.
type Contact struct {
	MemberID, ID, Name, LastName, Email string
	Fields                              json.RawMessage
}

// Store is the service's storage.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Save stores c, replacing what was stored for it; it reports false when
// nothing changed (a redelivery).
func (s *Store) Save(ctx context.Context, c Contact) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO contact_mirror.contacts (member_id, contact_id, name, last_name, email, fields)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (member_id, contact_id) DO UPDATE
		SET name = EXCLUDED.name, last_name = EXCLUDED.last_name, email = EXCLUDED.email, fields = EXCLUDED.fields
		WHERE contacts.fields IS DISTINCT FROM EXCLUDED.fields`, c.MemberID, c.ID, c.Name, c.LastName, c.Email, c.Fields)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}
