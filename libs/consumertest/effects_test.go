package consumertest_test

import (
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/pgtest"
)

// SchemaEffects changes with any row of the schema's tables, and not with
// the migration version tables.
func TestSchemaEffects(t *testing.T) {
	pool := pgtest.NewPool(t)
	pgtest.MustExec(t, pool, `CREATE SCHEMA fx; CREATE TABLE fx.items (id int PRIMARY KEY, v text);
		CREATE TABLE fx.schema_version (version int)`)
	effects := consumertest.SchemaEffects(pool, "fx")
	empty := effects(t)
	pgtest.MustExec(t, pool, `INSERT INTO fx.schema_version VALUES (1)`)
	if got := effects(t); got != empty {
		t.Errorf("a version row changed the effects: %q → %q", empty, got)
	}
	pgtest.MustExec(t, pool, `INSERT INTO fx.items VALUES (1, 'a')`)
	one := effects(t)
	if one == empty || !strings.Contains(one, "items: 1 rows") {
		t.Errorf("effects after an insert: %q", one)
	}
	pgtest.MustExec(t, pool, `UPDATE fx.items SET v = 'b'`)
	if got := effects(t); got == one {
		t.Errorf("an update left the effects at %q", got)
	}
}
