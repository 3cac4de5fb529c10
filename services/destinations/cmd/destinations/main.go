// Command destinations runs the destinations service; see
// services/destinations/README.md and docs/destinations.md.
package main

import (
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/destinations"
)

func main() { svcmain.Main(destinations.Command) }
