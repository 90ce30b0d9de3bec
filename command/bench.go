package command

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"asymptote.dev/asymptote/bench"
)

// benchCommand is `asymptote bench`.
type benchCommand struct{ invocation }

// Run runs the command.
func (cmd *benchCommand) Run(ctx context.Context) error {
	env, args := cmd.env, cmd.args
	fs := newFlagSet(env, "bench", "[flags]")
	quick := fs.Bool("quick", false, "smoke sizes: every measurement in seconds, figures not comparable")
	repeats := fs.Int("repeats", 3, "repetitions of the throughput schedule, asymptote's and Optuna's runs interleaved, and of the failover runs (the tables show medians; -quick runs the schedule once)")
	noOptuna := fs.Bool("no-optuna", false, "skip the Optuna runs")
	tmp := fs.String("tmp", "", "`directory` for the benchmarks' state (default: the system temp directory)")
	python := fs.String("python", "/usr/bin/python3", "Python with python3-optuna and python3-psycopg2 (Debian's)")
	plotPath := fs.String("plot", "", "write the throughput plot to this PNG `file`")
	jsonPath := fs.String("json", "", "write the raw figures to this JSON `file`")
	from := fs.String("from", "", "print the table (and plot) of a `report.json` written by -json instead of running the suite")
	heapPath := fs.String("heap-profile", "", "write a heap profile taken when the large study has finished to this `file`")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	var rep *bench.Report
	if *from != "" {
		b, err := os.ReadFile(*from)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("read %s: %w", *from, err)
		}
	} else {
		log := newLogger(env.Stderr, slog.LevelInfo)
		rep, err = bench.Run(ctx, bench.Options{
			TempDir: *tmp, Python: *python, Quick: *quick, Repeats: *repeats, NoOptuna: *noOptuna,
			HeapProfile: *heapPath, RunTimeout: 5 * time.Minute, Logger: log,
		})
		if err != nil {
			return err
		}
	}
	if err := rep.WriteTable(env.Stdout); err != nil {
		return err
	}
	if *plotPath != "" {
		if err := rep.Plot(*plotPath); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "plot written to %s\n", *plotPath)
	}
	if *jsonPath != "" && *from == "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonPath, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *jsonPath, err)
		}
	}
	return nil
}
