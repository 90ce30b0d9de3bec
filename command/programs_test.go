package command

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"asymptote.dev/asymptote/plugins/methods/command"
)

func TestParsePrograms(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(sh)
	sum, _ := command.Hash(real)
	got, err := parsePrograms([]string{"sh"})
	if err != nil || got[real] != sum {
		t.Fatalf("a bare name on PATH: %v, %v; want %s pinned at %s", got, err, real, sum)
	}
	for _, tc := range []struct{ in, want string }{
		{"python9", "python9 is neither in"},
		{"/etc", "/etc is not a regular file"},
		{real + "=abc", "the hash is not 64 hex digits"},
		{"=" + sum, "want the PATH"},
	} {
		if _, err := parsePrograms([]string{tc.in}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("-allow-program %s: %v, want %q", tc.in, err, tc.want)
		}
	}
	other := strings.Repeat("0", 64)
	if _, err := parsePrograms([]string{real, real + "=" + other}); err == nil || !strings.Contains(err.Error(), "twice with different hashes") {
		t.Errorf("one program, two hashes: %v", err)
	}
}
