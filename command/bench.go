package command

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"asymptote.dev/asymptote/bench"
)

// benchCommand is `asymptote bench`.
type benchCommand struct {
	invocation
	quick, noOptuna                         bool
	repeats                                 int
	tmp, python, plot, json, from, heapPath string
	only                                    listFlag
}

// flags declares bench's flags.
func (cmd *benchCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "bench", "[flags]")
	fs.BoolVar(&cmd.quick, "quick", false, "smoke sizes: every measurement in seconds, figures not comparable")
	fs.IntVar(&cmd.repeats, "repeats", 3, "repetitions of the throughput schedule, asymptote's and Optuna's runs interleaved, and of the failover runs (the tables show medians; -quick runs the schedule once)")
	fs.BoolVar(&cmd.noOptuna, "no-optuna", false, "skip the Optuna runs")
	fs.StringVar(&cmd.tmp, "tmp", "", "`directory` for the benchmarks' state (default: the system temp directory)")
	fs.StringVar(&cmd.python, "python", "/usr/bin/python3", "Python with python3-optuna and python3-psycopg2 (Debian's)")
	fs.StringVar(&cmd.plot, "plot", "", "write the throughput plot to this PNG `file`")
	fs.StringVar(&cmd.json, "json", "", "write the raw figures to this JSON `file`")
	fs.StringVar(&cmd.from, "from", "", "print the table (and plot) of a `report.json` written by -json instead of running the suite")
	fs.Var(&cmd.only, "only", "run only these `sections`, comma-separated or repeated ("+strings.Join(bench.Sections, ", ")+"); default all")
	fs.StringVar(&cmd.heapPath, "heap-profile", "", "write a heap profile taken when the large study has finished to this `file`")
	return fs
}

// Run runs the command.
func (cmd *benchCommand) Run(ctx context.Context) error {
	env := cmd.env
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	var rep *bench.Report
	if cmd.from != "" {
		b, err := os.ReadFile(cmd.from)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("read %s: %w", cmd.from, err)
		}
	} else {
		log := newLogger(env.Stderr, slog.LevelInfo)
		rep, err = bench.Run(ctx, bench.Options{
			TempDir: cmd.tmp, Python: cmd.python, Quick: cmd.quick, Repeats: cmd.repeats, NoOptuna: cmd.noOptuna,
			HeapProfile: cmd.heapPath, RunTimeout: 5 * time.Minute, Logger: log, Only: cmd.only,
		})
		if err != nil {
			return err
		}
	}
	if err := rep.WriteTable(env.Stdout); err != nil {
		return err
	}
	if cmd.plot != "" {
		if err := rep.Plot(cmd.plot); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "plot written to %s\n", cmd.plot)
	}
	if cmd.json != "" && cmd.from == "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cmd.json, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", cmd.json, err)
		}
	}
	return nil
}
