// Package command implements the asymptote command line: each subcommand
// is a small type holding its flags with a Run method, listed in the one
// command table (commands.go), so that cmd/asymptote stays a thin main and
// every command can be run from tests without os.Exit.
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Env carries the process's standard streams into a command.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// inspect, when set (by tests), sees every command's flags once they
	// are parsed; an error it returns stops the command before it does
	// anything. Tests use it to list each command's flags and check their
	// values without running the command.
	inspect func(fs *flag.FlagSet) error
	// loadStudy, when set (by tests), replaces fetching a study from the
	// leader for --study.
	loadStudy func(ctx context.Context, name string) (*studyData, error)
	// loadHistory, when set (by tests), replaces reading a study's metric
	// history from the bus for frontier --approach 1 --study: it returns
	// the records in `results -history` csv (checkpoints: only those
	// saved with a checkpoint, as -checkpoints).
	loadHistory func(ctx context.Context, name string, checkpoints bool) ([]byte, error)
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
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(env.Stderr, "asymptote: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return 2
	}
	err := c.run(ctx, env, args[1:])
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
	for _, c := range commands {
		if !c.Hidden {
			fmt.Fprintf(w, "  %-12s %s\n", c.Name, c.Summary)
		}
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
func parseFlags(env Env, fs *flag.FlagSet, args []string) ([]string, error) {
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
	if env.inspect != nil {
		if err := env.inspect(fs); err != nil {
			return nil, err
		}
	}
	return positional, nil
}

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
