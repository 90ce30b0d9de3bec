// Package cli implements the asymptote command line: one file per
// subcommand, each registering itself in the command table, so that
// cmd/asymptote stays a thin main and every command can be run from tests
// without os.Exit.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// Env carries the process's standard streams into a command.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Command is one subcommand.
type Command struct {
	// Name is the word that selects the command.
	Name string
	// Summary is one line for the usage listing.
	Summary string
	// Hidden commands are left out of the usage listing (for example the
	// re-exec target that serves built-in methods).
	Hidden bool
	// Run runs the command with the arguments after its name.
	Run func(ctx context.Context, env Env, args []string) error
}

var commands = map[string]*Command{}

// register adds c to the command table; each command's file calls it from
// init.
func register(c *Command) {
	if _, dup := commands[c.Name]; dup {
		panic("cli: command registered twice: " + c.Name)
	}
	commands[c.Name] = c
}

// ExitError asks Main to exit with Code after printing nothing more than the
// command already printed (for example when a study finished with failed
// trials).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Main runs the command named by args[0] and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "asymptote: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return 2
	}
	err := c.Run(ctx, env, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(env.Stderr, "asymptote %s: %v\n", c.Name, ee.Err)
		}
		return ee.Code
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "asymptote %s: %v\n", c.Name, ue.Err)
		return 2
	}
	fmt.Fprintf(env.Stderr, "asymptote %s: %v\n", c.Name, err)
	return 1
}

// UsageError reports a bad flag or argument; Main exits with status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usagef returns a *UsageError with a formatted message.
func usagef(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: asymptote <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.Hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'asymptote <command> -h' for a command's flags.")
}

// newFlagSet returns a flag set that writes its usage to env.Stderr and
// returns errors instead of exiting.
func newFlagSet(env Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("asymptote "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: asymptote %s %s\n\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors, then fills
// the flags the command line did not set from the environment (see
// applyEnv). Flags may come before or after positional arguments. Every
// command parses through here, so every flag of every command can be set
// in the environment.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &UsageError{Err: err}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if err := applyEnv(fs); err != nil {
		return nil, err
	}
	if inspectFlags != nil {
		if err := inspectFlags(fs); err != nil {
			return nil, err
		}
	}
	return positional, nil
}

// inspectFlags, when set (by tests), sees every command's flags once they
// are parsed; an error it returns stops the command before it does
// anything. Tests use it to list each command's flags and check their
// values without running the command.
var inspectFlags func(fs *flag.FlagSet) error

// newLogger returns the process logger at the level named by
// ASYMPTOTE_LOG_LEVEL (debug, info, warn, error; default warn for client
// commands, info for servers).
func newLogger(w io.Writer, def slog.Level) *slog.Logger {
	level := def
	if s := os.Getenv("ASYMPTOTE_LOG_LEVEL"); s != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err == nil {
			level = l
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
