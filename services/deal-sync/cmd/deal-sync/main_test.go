package main

import (
	"testing"

	"github.com/b24hub/b24hub/libs/consumertest"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
)

// TestRunOnItsOwn starts the command against an embedded JetStream and a
// fresh database, waits for its declared durable consumers, and shuts it
// down.
func TestRunOnItsOwn(t *testing.T) { consumertest.RunsOnItsOwn(t, dealsync.Command) }
