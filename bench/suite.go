// Package bench measures asymptote end to end on one machine, next to the
// peers it is compared with: Optuna (installed from Debian and run in the
// same process tree, on SQLite, PostgreSQL and JournalFileStorage) and Ray
// Tune's published figures.
//
// Every measurement runs the production code paths in this process:
// embedded etcd and NATS (the `asymptote dev` servers), coordinators with
// default settings, and agents that run built-in methods as plugin
// subprocesses of Options.Executable. Run executes the whole suite and
// returns a Report; `asymptote bench` prints it. The Go benchmarks in
// bench_test.go run single measurements under `go test -bench`.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"
)

// Options configures the suite.
type Options struct {
	// Executable is re-executed as `<Executable> method <name>` to serve
	// built-in methods (the asymptote binary; in tests the test binary).
	// Default os.Executable().
	Executable string
	// TempDir holds every benchmark's state (default os.TempDir()).
	TempDir string
	// Python runs the Optuna script (default /usr/bin/python3, Debian's,
	// which python3-optuna installs into).
	Python string
	// OptunaScript is the path of bench/optuna/optuna_bench.py; default:
	// found from the working directory upwards.
	OptunaScript string
	// Quick shrinks every measurement to a smoke run of seconds.
	Quick bool
	// Repeats is how many times the throughput and failover runs repeat;
	// the report gives medians (default 3).
	Repeats int
	// NoOptuna skips the peer runs.
	NoOptuna bool
	// HeapProfile, when set, receives a heap profile taken when the
	// large study has finished, to attribute its memory to the
	// coordinator, etcd and NATS (go tool pprof -top -inuse_space).
	HeapProfile string
	// RunTimeout bounds each cluster run (default 5m).
	RunTimeout time.Duration
	// Queue is the agents' queue (agent -queue; default 1, as the
	// command's default; negative: no queue).
	Queue float64
	// Logger receives progress at Info and the components' (servers',
	// coordinators', agents', plugins') warnings and errors.
	Logger *slog.Logger

	// components is Logger at Warn and above.
	components *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Queue == 0 {
		o.Queue = 1
	}
	if o.Executable == "" {
		o.Executable, _ = os.Executable()
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.Python == "" {
		o.Python = "/usr/bin/python3"
	}
	if o.Repeats <= 0 {
		o.Repeats = 3
	}
	if o.RunTimeout <= 0 {
		o.RunTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.components == nil {
		o.components = slog.New(warnOnly{o.Logger.Handler()})
	}
}

// warnOnly passes on records at Warn and above.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h warnOnly) WithAttrs(a []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(a)} }
func (h warnOnly) WithGroup(n string) slog.Handler      { return warnOnly{h.Handler.WithGroup(n)} }

// sizes are the suite's workload sizes.
type sizes struct {
	agents                  []int
	dispatchTrials          int
	optunaTrials, journalN  int
	overheadTrials, slots   int
	overheadAgents          int
	raySlots                int
	overheadSleep           time.Duration
	scaleTrials             int
	simAgents               int
	simFor                  time.Duration
	colds, warms, steps     int
	failovers, optunaRepeat int
}

func (o *Options) sizes() sizes {
	if o.Quick {
		return sizes{
			agents: []int{1, 2}, dispatchTrials: 100, optunaTrials: 20, journalN: 50,
			overheadTrials: 40, slots: 20, overheadAgents: 2, overheadSleep: 200 * time.Millisecond, raySlots: 4,
			scaleTrials: 500, simAgents: 50, simFor: 3 * time.Second,
			colds: 2, warms: 50, steps: 1000, failovers: 1, optunaRepeat: 1,
		}
	}
	return sizes{
		agents: []int{1, 2, 4, 8}, dispatchTrials: 2000, optunaTrials: 100, journalN: 500,
		overheadTrials: 2000, slots: 100, overheadAgents: 4, overheadSleep: time.Second, raySlots: RayTuneSlots,
		scaleTrials: 100_000, simAgents: 1000, simFor: 30 * time.Second,
		colds: 10, warms: 500, steps: 100_000, failovers: o.Repeats, optunaRepeat: o.Repeats,
	}
}

// Report is the suite's outcome.
type Report struct {
	Started  time.Time
	Took     time.Duration
	Machine  string
	Quick    bool
	Dispatch map[int][]DispatchResult
	Optuna   []OptunaRun
	// OptunaErr says why there are no Optuna figures, if there are none.
	OptunaErr string
	Overhead  OverheadResult
	// OverheadRay is the overhead on Ray Tune's published setup: as many
	// slots as its 16 CPUs.
	OverheadRay OverheadResult
	Scale       ScaleResult
	Swarm       HeartbeatResult
	Plugins     PluginResult
	Failover    []time.Duration
	// Failover3s is failover with a 3 s lease (-lease-ttl 3s).
	Failover3s []time.Duration
}

// Run runs the whole suite.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.setDefaults()
	sz := opts.sizes()
	rep := &Report{Started: time.Now(), Machine: machine(), Quick: opts.Quick, Dispatch: map[int][]DispatchResult{}}
	log := opts.Logger
	step := func(name string) func() {
		log.Info("bench: start", "step", name)
		t := time.Now()
		return func() { log.Info("bench: done", "step", name, "took", time.Since(t).Round(time.Millisecond)) }
	}

	// Throughput: repetitions form the outer loop, so a burst of
	// foreign load hits one repetition of every agent count rather than
	// every repetition of one.
	done := step("dispatch")
	for range opts.Repeats {
		for _, n := range sz.agents {
			r, err := Dispatch(ctx, opts, n, sz.dispatchTrials)
			if err != nil {
				return rep, fmt.Errorf("dispatch with %d agents: %w", n, err)
			}
			log.Info("bench: dispatch", "agents", n, "trials_per_s", r.TrialsPerSec)
			rep.Dispatch[n] = append(rep.Dispatch[n], r)
		}
	}
	done()
	if !opts.NoOptuna {
		done = step("optuna")
		runs, err := Optuna(ctx, opts, []string{"sqlite", "postgresql", "journal"}, sz.agents, sz.optunaTrials, sz.journalN, sz.optunaRepeat)
		rep.Optuna = runs
		if err != nil {
			rep.OptunaErr = err.Error()
			log.Warn("bench: optuna", "error", err)
		}
		done()
	} else {
		rep.OptunaErr = "skipped (-no-optuna)"
	}

	var err error
	done = step("overhead")
	if rep.Overhead, err = Overhead(ctx, opts, sz.overheadTrials, sz.overheadAgents, sz.slots, sz.overheadSleep); err != nil {
		return rep, fmt.Errorf("overhead: %w", err)
	}
	done()
	done = step("overhead on Ray Tune's setup")
	if rep.OverheadRay, err = Overhead(ctx, opts, sz.overheadTrials, sz.overheadAgents, sz.raySlots, sz.overheadSleep); err != nil {
		return rep, fmt.Errorf("overhead on %d slots: %w", sz.raySlots, err)
	}
	done()
	done = step("plugins")
	if rep.Plugins, err = Plugins(ctx, opts, sz.colds, sz.warms, sz.steps); err != nil {
		return rep, fmt.Errorf("plugins: %w", err)
	}
	done()
	done = step("failover")
	for range sz.failovers {
		d, err := Failover(ctx, opts, 0)
		if err != nil {
			return rep, fmt.Errorf("failover: %w", err)
		}
		rep.Failover = append(rep.Failover, d)
		if d, err = Failover(ctx, opts, 3*time.Second); err != nil {
			return rep, fmt.Errorf("failover with a 3 s lease: %w", err)
		}
		rep.Failover3s = append(rep.Failover3s, d)
	}
	done()
	done = step("heartbeats")
	if rep.Swarm, err = Heartbeats(ctx, opts, sz.simAgents, sz.simFor); err != nil {
		return rep, fmt.Errorf("heartbeats: %w", err)
	}
	done()
	done = step("scale")
	if rep.Scale, err = Scale(ctx, opts, sz.scaleTrials, 2); err != nil {
		return rep, fmt.Errorf("scale: %w", err)
	}
	done()
	rep.Took = time.Since(rep.Started)
	return rep, nil
}

// medianDispatch is the median trials/s over repetitions with n agents.
func (r *Report) medianDispatch(n int) float64 {
	var xs []float64
	for _, d := range r.Dispatch[n] {
		xs = append(xs, d.TrialsPerSec)
	}
	return median(xs)
}

// medianOptuna is the median trials/s of clean Optuna runs for storage
// and workers, and how many runs were clean out of how many.
func (r *Report) medianOptuna(storage string, workers int) (tps float64, clean, all int) {
	var xs []float64
	for _, o := range r.Optuna {
		if o.Storage != storage || o.Workers != workers {
			continue
		}
		all++
		if o.Error == "" && o.FailedWorkers == 0 {
			xs = append(xs, o.TrialsPerSec)
		}
	}
	return median(xs), len(xs), all
}

func (r *Report) agentCounts() []int {
	var ns []int
	for n := range r.Dispatch {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// machine describes the host in one line.
func machine() string {
	return fmt.Sprintf("%d CPUs, %s", numCPU(), cpuModel())
}
