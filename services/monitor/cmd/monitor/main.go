// Command monitor runs the monitor service; see services/monitor/README.md.
package main

import (
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/monitor"
)

func main() { svcmain.Main(monitor.Command) }
