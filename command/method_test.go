package command

import (
	"strings"
	"testing"
)

// TestMethodsListing: the test methods are listed only when asked for,
// as an agent offers them only with -test-methods.
func TestMethodsListing(t *testing.T) {
	clearAsymptoteEnv(t)
	tests := []struct {
		args   []string
		faulty bool
	}{
		{args: []string{"methods"}},
		{args: []string{"methods", "-test-methods"}, faulty: true},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, tt.args...)
		if code != 0 {
			t.Fatalf("asymptote %v = %d, stderr %q", tt.args, code, errOut)
		}
		for _, want := range []string{"synthetic (version", "  unique_tokens", "optional"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", tt.args, want, out)
			}
		}
		if got := strings.Contains(out, "faulty (version") && strings.Contains(out, `default "ok"`); got != tt.faulty {
			t.Errorf("%v lists faulty: %v, want %v", tt.args, got, tt.faulty)
		}
	}
}

func TestMethodCommandArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no name", args: []string{"method"}, want: "usage: asymptote method <name>"},
		{name: "unknown name", args: []string{"method", "nosuch"}, want: `unknown built-in method "nosuch"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("asymptote %v = %d, stderr %q; want 2 and %q", tt.args, code, errOut, tt.want)
			}
		})
	}
}
