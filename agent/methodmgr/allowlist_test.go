package methodmgr

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestClusterAllowlist changes the cluster's allowlist under a running
// manager, as heartbeat replies do: an external method runs once the list
// names its hash, is refused again when the list drops it or names
// another hash, and a method the agent's own flags allow keeps their hash.
func TestClusterAllowlist(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := shortTempDir(t)
	// An external method that is the test binary serving faulty.
	script := "#!/bin/sh\nexec '" + exe + "' method faulty\n"
	for _, name := range []string{"ext", "local"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sum := hashFile(t, filepath.Join(dir, "ext"))
	other := strings.Repeat("0", 64)
	m := newManager(t, func(c *Config) {
		c.Builtins = nil
		c.PluginDir = dir
		c.Allowlist = map[string]string{"local": sum}
	})
	run := func(method string) error {
		_, err := m.Run(t.Context(), Run{Method: method, Request: request("a", map[string]any{"mode": "ok"})}, nil)
		return err
	}
	steps := []struct {
		name    string
		cluster map[string]string
		offered []string
		ext     error // nil: runs
	}{
		{"none yet", nil, nil, ErrUnknownMethod},
		{"allowed", map[string]string{"ext": sum}, []string{"ext"}, nil},
		{"another hash", map[string]string{"ext": other}, nil, ErrHashMismatch},
		{"allowed again", map[string]string{"ext": sum}, []string{"ext"}, nil},
		{"revoked", map[string]string{}, nil, ErrUnknownMethod},
		// The flags' entry wins over the cluster's for the same name.
		{"shadowing a flag", map[string]string{"local": other}, nil, ErrUnknownMethod},
	}
	for _, st := range steps {
		got := m.Allow(st.cluster)
		if !slices.Equal(got, st.offered) {
			t.Errorf("%s: Allow offers %v, want %v", st.name, got, st.offered)
		}
		err := run("ext")
		switch {
		case st.ext == nil && err != nil:
			t.Errorf("%s: ext: %v, want it to run", st.name, err)
		case st.ext != nil && !errors.Is(err, st.ext):
			t.Errorf("%s: ext: err = %v, want %v", st.name, err, st.ext)
		}
		if err := run("local"); err != nil {
			t.Errorf("%s: local (allowed by the flags): %v", st.name, err)
		}
	}
}
