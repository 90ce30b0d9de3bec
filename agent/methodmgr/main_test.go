package methodmgr

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

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
	if dir := os.Getenv(testAgentEnv); dir != "" {
		os.Exit(runTestAgent(dir))
	}
	os.Exit(m.Run())
}

// testAgentEnv, set to a WorkDir, makes the test binary act as an agent:
// it starts a plugin, prints the plugin's pid and waits to be killed.
const testAgentEnv = "METHODMGR_TEST_AGENT"

func runTestAgent(dir string) int {
	exe, err := os.Executable()
	if err != nil {
		return 1
	}
	m, err := New(Config{Executable: exe, Builtins: append(methods.Names(), methods.TestNames()...), WorkDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res, err := m.Run(context.Background(), Run{Method: "faulty", Request: request("agent", nil)}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(int(res.Metrics["pid"]))
	time.Sleep(time.Hour)
	return 0
}
