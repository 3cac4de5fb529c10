// Command subscriptions runs the subscriptions service; see services/subscriptions/README.md.
package main

import (
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/subscriptions"
)

func main() { svcmain.Main(subscriptions.Command) }
