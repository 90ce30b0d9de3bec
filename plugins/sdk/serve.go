package sdk

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Starter is implemented by methods that prepare once per process, before
// the host's handshake completes: for example loading a dataset every trial
// shares. Serve calls Start only when the process runs as a plugin. A
// non-nil error ends the process with exit status 1 before the handshake, and
// the host reports the error text it finds on stderr.
type Starter interface {
	Start() error
}

// Serve serves m as a method plugin over go-plugin's gRPC transport and
// returns when the host asks the plugin to stop. Call it from main:
//
//	func main() { sdk.Serve(mymethod.New()) }
//
// Started by hand rather than by the agent, the program prints a hint and
// exits with status 1. Serve writes the handshake line to stdout, and while
// it serves, go-plugin redirects os.Stdout and os.Stderr to the host; log
// with [Logger].
func Serve(m Method) {
	if os.Getenv(Handshake.MagicCookieKey) == Handshake.MagicCookieValue {
		// The agent decides when a method stops. A SIGTERM sent to every
		// process of a job (SLURM signals all of a step's processes at a
		// time limit) also reaches the agent, which asks the method for a
		// checkpoint and then stops it; dying here would lose that work.
		// (Caught, not ignored: programs this process starts get the
		// default again.)
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			for range term {
				Logger().Info("SIGTERM ignored: the agent stops this method when it is done with it")
			}
		}()
		if s, ok := m.(Starter); ok {
			if err := s.Start(); err != nil {
				fmt.Fprintf(stderr, "method start: %v\n", err)
				os.Exit(1)
			}
		}
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginSet(m),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "plugin",
			Level:      hclog.LevelFromString(logLevel().String()),
			Output:     stderr,
			JSONFormat: true,
		}),
	})
}
