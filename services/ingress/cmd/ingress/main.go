// Command ingress runs the ingress service; see services/ingress/README.md.
package main

import (
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/ingress"
)

func main() { svcmain.Main(ingress.Command) }
