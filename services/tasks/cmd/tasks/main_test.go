package main

import (
	"testing"

	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/services/tasks"
)

// TestRunOnItsOwn starts the command against an embedded JetStream and a
// fresh database, waits for its declared durable consumers, and shuts it
// down.
func TestRunOnItsOwn(t *testing.T) { consumertest.RunsOnItsOwn(t, tasks.Command) }
