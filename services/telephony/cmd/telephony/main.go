// Command telephony runs the telephony service; see services/telephony/README.md.
package main

import (
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/services/telephony"
)

func main() { svcmain.Main(telephony.Command) }
