// Command deal-sync runs the deal-sync service; see services/deal-sync/README.md.
package main

import (
	"github.com/b24hub/b24hub/libs/svcmain"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
)

func main() { svcmain.Main(dealsync.Command) }
