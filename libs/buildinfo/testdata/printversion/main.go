// Command printversion prints buildinfo.Version; the package test links it
// with -ldflags -X to prove the documented variable name works.
package main

import (
	"fmt"

	"github.com/b24hub/b24hub/libs/buildinfo"
)

func main() { fmt.Println(buildinfo.Version()) }
