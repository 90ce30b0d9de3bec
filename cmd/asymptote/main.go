// Command asymptote is the single binary of the sweep orchestrator: the
// coordinator, the agent, the embedded development cluster, the client
// commands and the analysis commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"asymptote.dev/asymptote/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := command.Main(ctx, os.Args[1:], command.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
