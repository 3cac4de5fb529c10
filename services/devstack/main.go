// Command devstack is b24hub's local stack: one process that embeds a
// nats-server with JetStream (or connects to B24HUB_NATS_URL), provisions the
// streams, and runs every service. `go tool task dev` starts it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}
