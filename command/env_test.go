package command

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// errInspected stops a command once Env.inspect has seen its flags.
var errInspected = errors.New("flags inspected")

// flagsOf runs the command name with args far enough to parse its flags
// and returns its flag set, or nil when the command parses no flags.
// Nothing else of the command runs.
func flagsOf(t *testing.T, name string, args ...string) (*flag.FlagSet, error) {
	t.Helper()
	var got *flag.FlagSet
	inspect := func(fs *flag.FlagSet) error {
		got = fs
		return errInspected
	}
	env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, inspect: inspect}
	c, _ := lookup(name)
	err := c.run(context.Background(), env, args)
	if errors.Is(err, errInspected) {
		return got, nil
	}
	return nil, err
}

// clearAsymptoteEnv unsets every ASYMPTOTE_ variable for the test, so
// the environment the tests run in cannot set flags.
func clearAsymptoteEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "ASYMPTOTE_") {
			t.Setenv(k, v) // restored at cleanup
			os.Unsetenv(k)
		}
	}
}

// flaglessCommands parse no flags at all: `method` is started by the
// agent with a method name and nothing else.
var flaglessCommands = map[string]bool{"method": true}

// allCommandFlags returns every registered command's flag set.
func allCommandFlags(t *testing.T) map[string]*flag.FlagSet {
	t.Helper()
	out := map[string]*flag.FlagSet{}
	for _, c := range commands {
		name := c.Name
		fs, err := flagsOf(t, name)
		switch {
		case fs != nil:
			out[name] = fs
		case !flaglessCommands[name]:
			t.Fatalf("asymptote %s returned %v before parsing its flags; is it missing from flaglessCommands?", name, err)
		}
	}
	return out
}

// envValue returns a value for f that differs from its default, and the
// value f should then report.
func envValue(f *flag.Flag) string {
	if _, ok := f.Value.(*checkpointStore); ok {
		return "/from-env"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "from-env"
	}
	switch g.Get().(type) {
	case bool:
		if f.DefValue == "true" {
			return "false"
		}
		return "true"
	case int, int64, uint, uint64:
		if f.DefValue == "7" {
			return "8"
		}
		return "7"
	case float64:
		return "0.75"
	case time.Duration:
		return "7s"
	default:
		return "from-env"
	}
}

// TestEveryFlagFromTheEnvironment sets each flag of each registered
// command through ASYMPTOTE_<NAME> (upper case, dashes as underscores)
// and checks that the command sees the value, as README.md promises.
func TestEveryFlagFromTheEnvironment(t *testing.T) {
	clearAsymptoteEnv(t)
	all := allCommandFlags(t)
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, cmd := range names {
		all[cmd].VisitAll(func(f *flag.Flag) {
			t.Run(cmd+"/"+f.Name, func(t *testing.T) {
				v := envValue(f)
				key := "ASYMPTOTE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
				t.Setenv(key, v)
				fs, err := flagsOf(t, cmd)
				if fs == nil {
					t.Fatalf("asymptote %s with %s=%s: %v", cmd, key, v, err)
				}
				if got := fs.Lookup(f.Name).Value.String(); got != v {
					t.Errorf("asymptote %s with %s=%s: -%s is %q, want %q", cmd, key, v, f.Name, got, v)
				}
			})
		})
	}
}

// TestFlagsWinOverTheEnvironment checks the order of precedence: the
// command line, then the environment, then the default.
func TestFlagsWinOverTheEnvironment(t *testing.T) {
	clearAsymptoteEnv(t)
	tests := []struct {
		name string
		env  string // ASYMPTOTE_NATS_URL; "" leaves it unset
		args []string
		want string
	}{
		{name: "default", want: defaultNATSURL},
		{name: "environment", env: "nats://env:4222", want: "nats://env:4222"},
		{name: "flag", args: []string{"-nats-url", "nats://flag:4222"}, want: "nats://flag:4222"},
		{name: "flag over environment", env: "nats://env:4222", args: []string{"-nats-url", "nats://flag:4222"}, want: "nats://flag:4222"},
	}
	for _, tt := range tests {
		for _, cmd := range []string{"status", "fit", "crossover", "epochs", "frontier"} {
			t.Run(tt.name+"/"+cmd, func(t *testing.T) {
				if tt.env != "" {
					t.Setenv("ASYMPTOTE_NATS_URL", tt.env)
				}
				fs, err := flagsOf(t, cmd, tt.args...)
				if fs == nil {
					t.Fatal(err)
				}
				f := fs.Lookup("nats-url")
				if f == nil {
					t.Fatalf("asymptote %s has no -nats-url", cmd)
				}
				if got := f.Value.String(); got != tt.want {
					t.Errorf("-nats-url = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// TestStudyUsesNATSURL checks that --study reads from the cluster that
// -nats-url names, over ASYMPTOTE_NATS_URL: nothing listens on port 1, so
// the error must name it.
func TestStudyUsesNATSURL(t *testing.T) {
	clearAsymptoteEnv(t)
	t.Setenv("ASYMPTOTE_NATS_URL", "nats://127.0.0.1:2")
	const url = "nats://127.0.0.1:1"
	dir := t.TempDir()
	csv := writeFile(t, dir, "b.csv", "params,loss\n1e6,3\n1e7,2.5\n1e8,2.2\n1e9,2.1\n")
	tests := [][]string{
		{"fit", "--study", "s", "-nats-url", url},
		{"crossover", "--study", "s", "--versus", csv, "--range", "1e6:1e9", "-nats-url", url},
		{"epochs", "--study", "s", "-nats-url", url},
		{"frontier", "--study", "s", "--budget", "1e20", "-nats-url", url},
	}
	for _, args := range tests {
		t.Run(args[0], func(t *testing.T) {
			code, _, errOut := runCLI(t, args...)
			if code == 0 || !strings.Contains(errOut, "connect to NATS at "+url) {
				t.Errorf("asymptote %s = %d, stderr %q; want an error connecting to %s", strings.Join(args, " "), code, errOut, url)
			}
		})
	}
}
