package main

import (
	"testing"

	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/svcmain/svcmaintest"
	"github.com/b24hub/b24hub/services/monitor"
)

// command is the command main runs.
var command = monitor.Command.Command()

// TestCommand: `monitor migrate` against PostgreSQL, the command line and the
// exit status of main, as for every service.
func TestCommand(t *testing.T) { svcmaintest.Run(t, command, main, pgtest.NewDatabase) }
