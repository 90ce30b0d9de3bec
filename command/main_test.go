package command

import (
	"context"
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the asymptote binary: the
// agent re-executes os.Executable() as `<binary> method <name>` to serve
// built-in methods, which here is this test binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "method" {
		os.Exit(Main(context.Background(), os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}))
	}
	os.Exit(m.Run())
}
