package sdk

import (
	"fmt"
	"os"

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
