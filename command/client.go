package command

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/export"
	"asymptote.dev/asymptote/sweep"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	natsURL string
	timeout time.Duration
	sec     natsSecurityFlags
	// team and identity scope the API requests (docs/security.md).
	team, identity string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.natsURL, "nats-url", defaultNATSURL, "NATS `URL` of the cluster")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Second, "how long to wait for the leader to answer")
	c.sec.register(fs)
	fs.StringVar(&c.team, "team", "", "`team` to act as: its studies are the only ones this command sees and touches (the identity's env file sets it; empty on an open bus calls the unscoped API, which submits to the default team and sees every team)")
	fs.StringVar(&c.identity, "identity", "", "`name` of this identity on the team's subjects (default: the name in -nats-inbox _INBOX.NAME, else anonymous)")
}

// caller returns the team and identity the API requests name.
func (c *clientFlags) caller() (string, string) {
	id := c.identity
	if name, ok := strings.CutPrefix(c.sec.Inbox, "_INBOX."); id == "" && ok {
		id = name
	}
	return c.team, id
}

func (c *clientFlags) connect(env Env) (*bus.Client, *nats.Conn, error) {
	opts, err := c.sec.Options()
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	nc, err := nats.Connect(c.natsURL, append(opts, nats.Name("asymptote-cli"), nats.Timeout(5*time.Second),
		// The requests report the server's refusals; nats.go would also
		// print them.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w (%s)", c.natsURL, err, connectHint(err))
	}
	team, id := c.caller()
	client, err := bus.NewClient(nc, c.timeout).As(team, id)
	if err != nil {
		nc.Close()
		return nil, nil, usagef("-%v", err)
	}
	return client, nc, nil
}

// clientCommand is what the commands that ask a cluster's leader share:
// their invocation, and the -nats-url and -timeout of the cluster.
type clientCommand struct {
	invocation
	client clientFlags
}

// newFlags returns the flag set of the command name, with the cluster's
// flags on it.
func (c *clientCommand) newFlags(name, synopsis string) *flag.FlagSet {
	fs := newFlagSet(c.env, name, synopsis)
	c.client.register(fs)
	return fs
}

// connect connects to the cluster.
func (c *clientCommand) connect() (*bus.Client, *nats.Conn, error) { return c.client.connect(c.env) }

// submitCommand is `asymptote submit`.
type submitCommand struct {
	clientCommand
	wait bool
}

// flags declares submit's flags.
func (cmd *submitCommand) flags() *flag.FlagSet {
	fs := cmd.newFlags("submit", "STUDY.yaml [flags]")
	fs.BoolVar(&cmd.wait, "wait", false, "follow the study until it finishes, like watch")
	return fs
}

// Run runs the command.
func (cmd *submitCommand) Run(ctx context.Context) error {
	env := cmd.env
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one study spec file, got %d arguments", len(pos))
	}
	req, err := readSpec(pos[0])
	if err != nil {
		return err
	}
	c, nc, err := cmd.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := c.Submit(ctx, req)
	if err != nil {
		return err
	}
	printSubmit(env, r)
	if !cmd.wait {
		return nil
	}
	return watch(ctx, env, c, r.Study, watchOptions{interval: time.Second})
}

// readSpec reads and validates a spec locally, so a bad spec is reported
// before anything is sent.
func readSpec(path string) (api.SubmitRequest, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return api.SubmitRequest{}, err
	}
	if _, err := sweep.Parse(path, src); err != nil {
		return api.SubmitRequest{}, err
	}
	return api.SubmitRequest{SpecFile: path, Spec: string(src)}, nil
}

func printSubmit(env Env, r *api.SubmitReply) {
	switch {
	case r.Added == 0:
		fmt.Fprintf(env.Stderr, "study %s: nothing new to schedule (%d trials already known)\n", r.Study, r.Total)
	case r.Existing == 0:
		fmt.Fprintf(env.Stderr, "study %s: submitted %d trials\n", r.Study, r.Added)
	default:
		fmt.Fprintf(env.Stderr, "study %s: added %d new trials to the %d already known (%d in all)\n", r.Study, r.Added, r.Existing, r.Total)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(env.Stderr, "warning: study %s: %s\n", r.Study, w)
	}
}

// statusCommand is `asymptote status`.
type statusCommand struct {
	clientCommand
	json bool
}

// flags declares status's flags.
func (cmd *statusCommand) flags() *flag.FlagSet {
	fs := cmd.newFlags("status", "[STUDY] [flags]")
	fs.BoolVar(&cmd.json, "json", false, "print JSON")
	return fs
}

// Run runs the command.
func (cmd *statusCommand) Run(ctx context.Context) error {
	env := cmd.env
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("want at most one study name")
	}
	study := ""
	if len(pos) == 1 {
		study = pos[0]
	}
	c, nc, err := cmd.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := c.Status(ctx, study)
	if err != nil {
		return err
	}
	if cmd.json {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printStatus(env.Stdout, r, study != "", time.Now())
	printBacklog(ctx, env.Stdout, nc)
	printSLURM(env.Stdout, slurmReports(ctx, nc, 300*time.Millisecond), time.Now())
	return nil
}

// watchCommand is `asymptote watch`.
type watchCommand struct {
	clientCommand
	interval time.Duration
}

// flags declares watch's flags.
func (cmd *watchCommand) flags() *flag.FlagSet {
	fs := cmd.newFlags("watch", "STUDY [flags]")
	fs.DurationVar(&cmd.interval, "interval", time.Second, "refresh interval")
	return fs
}

// Run runs the command.
func (cmd *watchCommand) Run(ctx context.Context) error {
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one study name")
	}
	c, nc, err := cmd.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	return watch(ctx, cmd.env, c, pos[0], watchOptions{interval: cmd.interval})
}

type watchOptions struct {
	interval time.Duration
	log      *slog.Logger
}

// watch prints a study's progress until every trial has finished. On a
// terminal the line is redrawn in place; otherwise a line is printed every
// few seconds.
func watch(ctx context.Context, env Env, c *bus.Client, study string, o watchOptions) error {
	tty := isTerminal(env.Stderr)
	var lastPrint time.Time
	drawn := false // a progress line is drawn in place, without its newline
	for {
		r, err := c.Status(ctx, study)
		var remote *api.RemoteError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &remote):
			// A leader answered, typically that no study has this name:
			// waiting will not change its answer.
			if drawn {
				fmt.Fprintln(env.Stderr)
			}
			return remote
		default:
			fmt.Fprintf(env.Stderr, "waiting for a leader: %v\n", err)
		}
		if err == nil && len(r.Studies) == 1 {
			st := r.Studies[0]
			line := progressLine(&st)
			if tty {
				fmt.Fprintf(env.Stderr, "\r\033[K%s", line)
				drawn = true
			} else if time.Since(lastPrint) >= 5*time.Second || st.Done() {
				fmt.Fprintln(env.Stderr, line)
				lastPrint = time.Now()
			}
			if st.Done() {
				if tty {
					fmt.Fprintln(env.Stderr)
				}
				return nil
			}
			if q := st.Quarantine; q != nil {
				if tty {
					fmt.Fprintln(env.Stderr)
				}
				printProblems(env.Stderr, &st)
				return fmt.Errorf("study %s is quarantined: %s", study, q.Reason)
			}
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(env.Stderr)
			}
			return ctx.Err()
		case <-time.After(o.interval):
		}
	}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// cancelCommand is `asymptote cancel`.
type cancelCommand struct {
	clientCommand
	reason string
}

// flags declares cancel's flags.
func (cmd *cancelCommand) flags() *flag.FlagSet {
	fs := cmd.newFlags("cancel", "STUDY [TRIAL...] [flags]")
	fs.StringVar(&cmd.reason, "reason", "", "why, recorded on each cancelled trial")
	return fs
}

// Run runs the command.
func (cmd *cancelCommand) Run(ctx context.Context) error {
	env := cmd.env
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return usagef("want a study name, and optionally trial IDs")
	}
	c, nc, err := cmd.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := c.Cancel(ctx, api.CancelRequest{Study: pos[0], Trials: pos[1:], Reason: cmd.reason})
	if err != nil {
		return err
	}
	if r.Note != "" {
		fmt.Fprintln(env.Stdout, r.Note)
		return nil
	}
	fmt.Fprintf(env.Stdout, "cancelled %d trials of %s\n", r.Cancelled, pos[0])
	return nil
}

// drainCommand is `asymptote drain`.
type drainCommand struct{ clientCommand }

// flags declares drain's flags.
func (cmd *drainCommand) flags() *flag.FlagSet { return cmd.newFlags("drain", "NODE [flags]") }

// Run runs the command.
func (cmd *drainCommand) Run(ctx context.Context) error {
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one agent's node ID ('asymptote status' lists them), got %d arguments", len(pos))
	}
	c, nc, err := cmd.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := c.Drain(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.env.Stdout, "agent %s is draining: it takes no more work, and its %d running attempts are preempted and run again first elsewhere\n", r.Node, r.Preempted)
	return nil
}

// resultsCommand is `asymptote results`.
type resultsCommand struct {
	clientCommand
	format  string
	history bool
	// checkpoints prints only the reports saved with a checkpoint.
	checkpoints bool
	trials      listFlag
	out         string
}

// flags declares results' flags.
func (cmd *resultsCommand) flags() *flag.FlagSet {
	fs := cmd.newFlags("results", "STUDY [flags]")
	fs.StringVar(&cmd.format, "format", "table", "output format: table, csv, json, jsonl (one record a line, for pandas.read_json(lines=True), Polars and DuckDB) or parquet")
	fs.BoolVar(&cmd.history, "history", false, "print the metric history (every report of every attempt, one row a metric value in csv and parquet) instead of the trials")
	fs.BoolVar(&cmd.checkpoints, "checkpoints", false, "print the anytime records: the metrics each attempt reported with its checkpoints (tokens and FLOPs so far among them), in -history's shape")
	fs.Var(&cmd.trials, "trial", "with -history or -checkpoints, only this trial `ID` (repeatable)")
	fs.StringVar(&cmd.out, "o", "", "write to this `file` (whole or not at all) instead of standard output; parquet needs it unless standard output is redirected")
	return fs
}

// Run runs the command.
func (cmd *resultsCommand) Run(ctx context.Context) error {
	env := cmd.env
	pos, err := cmd.parse(cmd.flags())
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one study name")
	}
	formats := []string{"table", "csv", "json", "jsonl", "parquet"}
	if !slices.Contains(formats, cmd.format) {
		return usagef("-format %q: want table, csv or json, or jsonl for one record a line, or parquet", cmd.format)
	}
	if cmd.history && cmd.checkpoints {
		return usagef("-history and -checkpoints both choose what to print; give one")
	}
	if (cmd.history || cmd.checkpoints) && cmd.format == "table" {
		cmd.format = "csv"
	}
	if len(cmd.trials) > 0 && !cmd.history && !cmd.checkpoints {
		return usagef("-trial selects trials of the metric history; add -history or -checkpoints")
	}
	if cmd.format == "parquet" && cmd.out == "" && isTerminal(env.Stdout) {
		return usagef("-format parquet writes binary; give -o FILE.parquet or redirect standard output")
	}
	c, nc, err := cmd.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	return writeOutput(env.Stdout, cmd.out, func(w io.Writer) error {
		if cmd.history || cmd.checkpoints {
			rows, err := readHistory(ctx, c, nc, pos[0], cmd.trials, cmd.checkpoints)
			if err != nil {
				return err
			}
			return writeHistory(w, rows, cmd.format)
		}
		r, err := c.Results(ctx, pos[0])
		if err != nil {
			return err
		}
		if cmd.format == "parquet" {
			return export.TrialsParquet(w, r.Trials)
		}
		return writeResults(w, r, cmd.format, 0)
	})
}

// writeOutput runs write on standard output, or on a temporary file that
// replaces path only once it is complete.
func writeOutput(stdout io.Writer, path string, write func(io.Writer) error) error {
	if path == "" {
		return write(stdout)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("-o %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := errors.Join(bw.Flush(), f.Close()); err != nil {
		return fmt.Errorf("-o %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}

// readHistory reads a study's metric history, keeping only the given
// trials when any are: on an open bus from the history stream (no
// coordinator needed), and through the leader, which checks the caller's
// team, on a secured one.
func readHistory(ctx context.Context, c *bus.Client, nc *nats.Conn, study string, trials []string, checkpoints bool) ([]export.Report, error) {
	one := ""
	if len(trials) == 1 {
		one = trials[0]
	}
	var rows []export.Report
	keep := func(m *bus.MetricsReport) error {
		if len(trials) > 1 && !slices.Contains(trials, m.Trial) || checkpoints && !m.Checkpoint {
			return nil
		}
		rows = append(rows, export.ReportOf(m))
		return nil
	}
	if c.OnTeamSubjects() {
		err := c.History(ctx, study, one, func(cv *bus.Curve) error {
			rs := cv.Reports()
			for i := range rs {
				if err := keep(&rs[i]); err != nil {
					return err
				}
			}
			return nil
		})
		return rows, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return rows, bus.History(ctx, js, study, one, keep)
}

// writeHistory writes history rows: csv and parquet in long form (trial,
// attempt, step, time, metric, value), json as one document, jsonl as one
// report a line.
func writeHistory(w io.Writer, rows []export.Report, format string) error {
	switch format {
	case "parquet":
		return export.HistoryParquet(w, rows)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"history": rows})
	case "jsonl":
		return export.HistoryJSONL(w, rows)
	}
	return export.HistoryCSV(w, rows)
}
