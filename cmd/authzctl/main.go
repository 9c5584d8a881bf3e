// Command authzctl is the operator's shell interface to authzd: provisioning, checks,
// the audit trail and API tokens, over package client. Run `authzctl --help`.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
