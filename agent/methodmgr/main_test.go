package methodmgr

import (
	"fmt"
	"os"
	"testing"

	"asymptote.dev/asymptote/plugins/methods"
	"asymptote.dev/asymptote/plugins/sdk"
)

// TestMain doubles as the plugin: the manager under test re-executes this
// test binary as `<test binary> method <name>`, and go-plugin's cookie in
// the environment tells it to serve the method instead of running tests.
func TestMain(m *testing.M) {
	if os.Getenv(sdk.Handshake.MagicCookieKey) != "" {
		if len(os.Args) != 3 || os.Args[1] != "method" {
			fmt.Fprintf(os.Stderr, "test plugin: bad arguments %q\n", os.Args[1:])
			os.Exit(2)
		}
		meth, ok := methods.Lookup(os.Args[2])
		if !ok {
			fmt.Fprintf(os.Stderr, "test plugin: unknown method %q\n", os.Args[2])
			os.Exit(2)
		}
		sdk.Serve(meth)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
