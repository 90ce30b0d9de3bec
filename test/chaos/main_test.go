package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

var (
	seedFlag = flag.Uint64("chaos.seed", 0, "seed of the fault schedule (0: draw one from the clock; the test prints it)")
	soakFlag = flag.Duration("chaos.soak", 0, "run TestSoak for this long, one study after another under faults (0: skip it)")
	keepFlag = flag.Bool("chaos.keep", false, "keep every work directory (logs, data), not only those of failed tests")
)

// binPath is the asymptote binary TestMain builds from this checkout.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "asymptote-chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "asymptote")
		start := time.Now()
		build := exec.Command("go", "build", "-o", binPath, "asymptote.dev/asymptote/cmd/asymptote")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: build the asymptote binary: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "chaos: built %s in %s\n", binPath, time.Since(start).Round(time.Millisecond))
		return m.Run()
	}())
}

// requireServers fails the test, never skips it, when the server binaries
// are missing: a CI run that silently skipped the chaos suite would prove
// nothing.
func requireServers(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"nats-server", "etcd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not on PATH: the chaos suite runs real NATS and etcd servers; install them with scripts/install-test-deps.sh (Debian packages nats-server and etcd-server)", bin)
		}
	}
}
