package command

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/plugins/methods/command"
)

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestAllowArguments checks how `asymptote allow` reads its arguments,
// and that each misuse says what to give instead.
func TestAllowArguments(t *testing.T) {
	file := filepath.Join(t.TempDir(), "m")
	if err := os.WriteFile(file, []byte("hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// sha256 of "hello\n".
	const helloSum = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	sum := strings.Repeat("a", 64)
	tests := []struct {
		name    string
		cmd     allowCommand
		args    []string
		want    api.AllowRequest
		wantErr string
	}{
		{"list", allowCommand{}, nil, api.AllowRequest{}, ""},
		{"method", allowCommand{}, []string{"m", sum}, api.AllowRequest{Kind: api.AllowMethod, Name: "m", SHA256: sum}, ""},
		{"program", allowCommand{program: true}, []string{"/usr/bin/python3", sum}, api.AllowRequest{Kind: api.AllowProgram, Name: "/usr/bin/python3", SHA256: sum}, ""},
		{"file", allowCommand{file: file}, []string{"m"}, api.AllowRequest{Kind: api.AllowMethod, Name: "m", SHA256: helloSum}, ""},
		{"revoke", allowCommand{revoke: true, program: true}, []string{"/p"}, api.AllowRequest{Kind: api.AllowProgram, Name: "/p", Revoke: true}, ""},
		{"no hash", allowCommand{}, []string{"m"}, api.AllowRequest{}, "want NAME SHA256"},
		{"revoke with a hash", allowCommand{revoke: true}, []string{"m", sum}, api.AllowRequest{}, "-revoke takes one NAME"},
		{"file and a hash", allowCommand{file: file}, []string{"m", sum}, api.AllowRequest{}, "takes one NAME"},
		{"missing file", allowCommand{file: file + ".gone"}, []string{"m"}, api.AllowRequest{}, "-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cmd.request(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("request = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestOfferMethods checks what an agent offers under the cluster's
// allowlist: the command method once some program is allowed, the
// cluster's programs pinned by the path they resolve to here and never
// over the flags' hash for the same path, and the cluster's methods that
// the manager verified.
func TestOfferMethods(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "python3.11")
	if err := os.WriteFile(real, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "python3")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	log := slogDiscard()
	builtins := func() []string { return []string{"charlm", "command", "synthetic"} }

	names, env := offerMethods(log, builtins(), nil, nil, bus.Allowlist{}, nil)
	if strings.Join(names, ",") != "charlm,synthetic" || env != nil {
		t.Errorf("nothing allowed: names %v env %v, want no command method", names, env)
	}
	cluster := bus.Allowlist{AllowHashes: api.AllowHashes{Programs: map[string]string{link: a, filepath.Join(dir, "gone"): a}}}
	names, env = offerMethods(log, builtins(), map[string]string{"flagged": a}, nil, cluster, []string{"train_lm"})
	if strings.Join(names, ",") != "charlm,command,flagged,synthetic,train_lm" {
		t.Errorf("names = %v", names)
	}
	want := `{"` + real + `":"` + a + `"}`
	if got := strings.Join(env["command"], " "); got != command.AllowEnv+"="+want {
		t.Errorf("command env = %s, want %s=%s (the resolved path; the missing program left out)", got, command.AllowEnv, want)
	}
	_, env = offerMethods(log, builtins(), nil, map[string]string{real: b}, cluster, nil)
	if got := strings.Join(env["command"], " "); !strings.Contains(got, b) || strings.Contains(got, a) {
		t.Errorf("command env = %s, want the flag's hash %s for %s", got, b, real)
	}
}
