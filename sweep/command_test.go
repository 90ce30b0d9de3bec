package sweep

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

const commandSpec = `
name: script
method: command
command:
  program: train.py
  interpreter: python3
  args: ["--lr={lr}", "--features={features}", "--seed={seed}", "{{literal}}"]
space:
  lr: [0.001, 0.01]
  features: [8, 1e6]
`

func TestCommandArgv(t *testing.T) {
	s, err := Parse("s.yaml", []byte(commandSpec))
	if err != nil {
		t.Fatal(err)
	}
	trials, err := s.Expand()
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != 4 {
		t.Fatalf("%d trials, want 4", len(trials))
	}
	got, err := s.Command.Argv(trials[0].Params, map[string]any{"seed": trials[0].Seed})
	if err != nil {
		t.Fatal(err)
	}
	// Whole numbers reach the program as integers (argparse's int
	// refuses "8.0" and "1e+06").
	want := []string{"--lr=0.001", "--features=8", "--seed=0", "{literal}"}
	if !slices.Equal(got, want) {
		t.Errorf("argv %q, want %q", got, want)
	}
	got, _ = s.Command.Argv(trials[2].Params, map[string]any{"seed": int64(0)})
	if got[1] != "--features=1000000" {
		t.Errorf("features 1e6 became %q, want --features=1000000", got[1])
	}
}

func TestCommandDefaultArgs(t *testing.T) {
	s, err := Parse("s.yaml", []byte("name: s\nmethod: command\ncommand: {program: /bin/echo}\nfixed: {b: true, a: 0.5, name: x y}\n"))
	if err != nil {
		t.Fatal(err)
	}
	trials, _ := s.Expand()
	got, err := s.Command.Argv(trials[0].Params, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--a=0.5", "--b=true", "--name=x y"}
	if !slices.Equal(got, want) {
		t.Errorf("argv %q, want %q", got, want)
	}
	if s.Command.Grace != DefaultCommandGrace {
		t.Errorf("grace %s, want the default %s", s.Command.Grace, DefaultCommandGrace)
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{8.0, "8"}, {-3.0, "-3"}, {1e6, "1000000"}, {0.0003, "0.0003"}, {1.5e-8, "1.5e-08"},
		{1e300, "1e+300"}, {"gelu", "gelu"}, {true, "true"}, {int64(7), "7"},
	} {
		if got := FormatValue(tc.in); got != tc.want {
			t.Errorf("FormatValue(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		name, spec, field, msg string
	}{
		{"no section", "name: s\nmethod: command\n", "command", "method: command runs the program"},
		{"section for another method", "name: s\nmethod: synthetic\ncommand: {program: x}\n", "command", "only method: command reads"},
		{"no program", "name: s\nmethod: command\ncommand: {args: []}\n", "command.program", "missing"},
		{"unknown parameter", "name: s\nmethod: command\ncommand: {program: x, args: [\"--lr={lrr}\"]}\nfixed: {lr: 1}\n", "command.args[0]", `{lrr} names no parameter (did you mean "lr"?)`},
		{"unclosed brace", "name: s\nmethod: command\ncommand: {program: x, args: [\"--lr={lr\"]}\nfixed: {lr: 1}\n", "command.args[0]", "unclosed {"},
		{"stray brace", "name: s\nmethod: command\ncommand: {program: x, args: [\"a}b\"]}\n", "command.args[0]", "unmatched }"},
		{"args not a list", "name: s\nmethod: command\ncommand: {program: x, args: --lr=1}\n", "command.args", "want a list"},
		{"relative workdir", "name: s\nmethod: command\ncommand: {program: x, workdir: proj}\n", "command.workdir", "not an absolute path"},
		{"bad pattern", "name: s\nmethod: command\ncommand: {program: x, pattern: \"(\"}\n", "command.pattern", "not a regular expression"},
		{"pattern without metrics", "name: s\nmethod: command\ncommand: {program: x, pattern: \"loss (\\\\d+)\"}\n", "command.pattern", "names no metric"},
		{"interpreter with options", "name: s\nmethod: command\ncommand: {program: x, interpreter: python3 -u}\n", "command.interpreter", "put its options in args"},
		{"unknown key", "name: s\nmethod: command\ncommand: {program: x, arg: []}\n", "command.arg", `did you mean "args"?`},
		{"bad grace", "name: s\nmethod: command\ncommand: {program: x, grace: 5}\n", "command.grace", "want a duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tc.spec))
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a *SpecError", err)
			}
			if se.Field != tc.field || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("error %q (field %q), want field %q and a message containing %q", err, se.Field, tc.field, tc.msg)
			}
		})
	}
}

// The command is part of a trial's identity, its grace is not, and a study
// without one keeps the IDs it always had.
func TestCommandIdentity(t *testing.T) {
	ids := func(src string) []string {
		t.Helper()
		s, err := Parse("s.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		trials, err := s.Expand()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tr := range trials {
			out = append(out, tr.ID)
		}
		return out
	}
	base := ids(commandSpec)
	if g := ids(strings.Replace(commandSpec, "interpreter: python3", "interpreter: python3\n  grace: 30s", 1)); !slices.Equal(g, base) {
		t.Errorf("changing grace changed the IDs: %v against %v", g, base)
	}
	if g := ids(strings.Replace(commandSpec, "--lr={lr}", "--learning-rate={lr}", 1)); slices.ContainsFunc(g, func(id string) bool { return slices.Contains(base, id) }) {
		t.Errorf("changing an argument kept an ID: %v against %v", g, base)
	}
	if g := ids(strings.Replace(commandSpec, "program: train.py", "program: train2.py", 1)); slices.ContainsFunc(g, func(id string) bool { return slices.Contains(base, id) }) {
		t.Errorf("changing the program kept an ID")
	}
	plain := "name: s\nmethod: synthetic\nfixed: {lr: 0.5}\n"
	s, _ := Parse("s.yaml", []byte(plain))
	tr, _ := s.Expand()
	if want := TrialID("synthetic", "", map[string]any{"lr": 0.5}, 0); tr[0].ID != want {
		t.Errorf("a study without a command has ID %s, want TrialID's %s", tr[0].ID, want)
	}
}

func TestMethodConfig(t *testing.T) {
	s, err := Parse("s.yaml", []byte(commandSpec))
	if err != nil {
		t.Fatal(err)
	}
	var mc MethodConfig
	if err := json.Unmarshal(s.MethodConfig(), &mc); err != nil {
		t.Fatal(err)
	}
	if mc.Command == nil || mc.Command.Program != "train.py" || mc.Command.Grace != time.Second || len(mc.Command.Args) != 4 {
		t.Errorf("config round-trip %+v", mc.Command)
	}
	plain, _ := Parse("s.yaml", []byte("name: s\nmethod: synthetic\n"))
	if plain.MethodConfig() != nil {
		t.Errorf("a study without a command has config %s", plain.MethodConfig())
	}
	// A variant (an adaptive search's promotion) keeps the command in its
	// identity, so it matches the expanded trial.
	trials, _ := s.Expand()
	v, err := s.Variant(trials[0].Params, map[string]any{}, trials[0].Seed)
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != trials[0].ID {
		t.Errorf("variant ID %s, expanded %s", v.ID, trials[0].ID)
	}
}

// args: [] passes no arguments at all, unlike a section without args
// (--name=value for each parameter): through the dispatch's JSON too, and
// the two are different trials.
func TestCommandEmptyArgs(t *testing.T) {
	none, err := Parse("s.yaml", []byte("name: s\nmethod: command\ncommand: {program: x, args: []}\nfixed: {lr: 0.1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	flags, _ := Parse("s.yaml", []byte("name: s\nmethod: command\ncommand: {program: x}\nfixed: {lr: 0.1}\n"))
	var mc MethodConfig
	if err := json.Unmarshal(none.MethodConfig(), &mc); err != nil {
		t.Fatal(err)
	}
	params := map[string]any{"lr": 0.1}
	if argv, _ := mc.Command.Argv(params, nil); len(argv) != 0 {
		t.Errorf("args: [] after the dispatch gives %q, want no arguments", argv)
	}
	if err := json.Unmarshal(flags.MethodConfig(), &mc); err != nil {
		t.Fatal(err)
	}
	if argv, _ := mc.Command.Argv(params, nil); !slices.Equal(argv, []string{"--lr=0.1"}) {
		t.Errorf("no args after the dispatch gives %q, want --lr=0.1", argv)
	}
	a, _ := none.Expand()
	b, _ := flags.Expand()
	if a[0].ID == b[0].ID {
		t.Errorf("args: [] and no args share the trial ID %s", a[0].ID)
	}
}
