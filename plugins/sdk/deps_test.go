package sdk

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces that method binaries stay small: the SDK must
// never pull in the agent's or coordinator's infrastructure.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "asymptote.dev/asymptote/plugins/sdk", "asymptote.dev/asymptote/plugins/sdk/sdktest").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/nats-io/", "go.etcd.io/etcd", "go.etcd.io/bbolt", "asymptote.dev/asymptote/agent", "asymptote.dev/asymptote/coordinator"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("plugins/sdk depends on %s", dep)
			}
		}
	}
}
