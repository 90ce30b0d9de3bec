package methodmgr

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"asymptote.dev/asymptote/plugins/sdk"
)

// TestExternalMethod builds the example method module (a separate Go
// module built only on plugins/sdk), allowlists its hash and runs a trial
// on it, exactly as an operator would deploy an external method.
func TestExternalMethod(t *testing.T) {
	if testing.Short() {
		t.Skip("builds examples/method-go")
	}
	t.Parallel()
	dir := shortTempDir(t)
	bin := filepath.Join(dir, "sgd-line")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..", "examples", "method-go")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	good := hashFile(t, bin)
	m := newManager(t, func(c *Config) {
		c.Builtins = nil
		c.PluginDir = dir
		c.Allowlist = map[string]string{"sgd-line": good}
	})
	info, err := m.Info(t.Context(), "sgd-line")
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != "sgd-line" {
		t.Errorf("Info.Name = %q, want sgd-line", info.Name)
	}
	reports := 0
	res, err := m.Run(t.Context(), Run{Method: "sgd-line", Request: request("ext", map[string]any{"steps": 500.0})},
		func(sdk.Metrics) error { reports++; return nil })
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if w := res.Metrics["w"]; w < 2.5 || w > 3.5 {
		t.Errorf("w = %v, want about 3", w)
	}
	if reports == 0 {
		t.Error("no metrics reported")
	}

	// A binary changed after it was allowlisted is refused at launch.
	// (Replaced, not rewritten: the pooled process still runs the file.)
	if err := os.WriteFile(bin+".new", []byte("#!/bin/sh\necho tampered\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	fresh := newManager(t, func(c *Config) {
		c.Builtins = nil
		c.PluginDir = dir
		c.Allowlist = map[string]string{"sgd-line": good}
	})
	_, err = fresh.Run(t.Context(), Run{Method: "sgd-line", Request: request("ext", nil)}, nil)
	var me *MethodError
	if !errors.As(err, &me) || me.Kind != Refused || !errors.Is(err, ErrHashMismatch) {
		t.Errorf("tampered binary: err = %v, want Refused with ErrHashMismatch", err)
	}
}
