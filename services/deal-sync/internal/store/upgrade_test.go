package store_test

import (
	"testing"

	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
)

// TestUpgradeHandsTheOutboxOver upgrades a database of the release whose
// 001 created the service's own outbox table, with a change still waiting
// to be published: after Migrate the change is in the outbox table of
// libs/consumer/outbox, unpublished, and the old table is gone.
func TestUpgradeHandsTheOutboxOver(t *testing.T) {
	consumertest.OutboxHandover(t, store.Schema, store.Migrations, store.Migrate)
}
