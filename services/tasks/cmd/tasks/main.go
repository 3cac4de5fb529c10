// Command tasks runs the tasks service; see services/tasks/README.md.
package main

import (
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/tasks"
)

func main() { svcmain.Main(tasks.Command) }
