package command

import (
	"strings"
	"testing"
)

func TestMethodsListing(t *testing.T) {
	code, out, errOut := runCLI(t, "methods")
	if code != 0 {
		t.Fatalf("asymptote methods = %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"synthetic (version", "faulty (version", "  unique_tokens", "optional", `default "ok"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
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
