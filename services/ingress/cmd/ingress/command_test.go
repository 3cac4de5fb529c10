package main

import (
	"testing"

	"github.com/b24hub/b24hub/libs/svcmain/svcmaintest"
	"github.com/b24hub/b24hub/services/ingress"
)

// command is the command main runs.
var command = ingress.Command.Command()

// TestCommand: `ingress migrate` against PostgreSQL, the command line and the
// exit status of main, as for every service.
func TestCommand(t *testing.T) { svcmaintest.Run(t, command, main, nil) }
