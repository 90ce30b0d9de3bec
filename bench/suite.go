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
	"strings"
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
	// Repeats is how many times the throughput schedule (asymptote's and
	// Optuna's runs interleaved, dispatchPlan) and the failover runs
	// repeat; the report gives medians (default 3; Quick runs the
	// schedule once).
	Repeats int
	// NoOptuna skips the peer runs.
	NoOptuna bool
	// Only, when not empty, names the sections to run (Sections lists
	// them); the others are left out of the run and of the report.
	Only []string
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
	// natsSync is the servers' devcluster.Config.NATSSyncInterval (0,
	// the default: sync every JetStream write); Dispatch sets it per run.
	natsSync time.Duration
	// secureAgents, when set, makes the cluster secure (DispatchConfig.
	// Secure), with an identity for each of these agents.
	secureAgents []string
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
	// repeats is how many times the dispatch schedule repeats.
	repeats int
	// concurrency are the Optuna worker counts, and the asymptote slot
	// counts it is compared with at the same concurrency.
	concurrency []int
	// agents are the agent counts of asymptote's own configuration, with
	// defaultSlots slots in all.
	agents                 []int
	defaultSlots           int
	dispatchTrials         int
	optunaTrials, journalN int
	syncInterval           time.Duration
	overheadTrials, slots  int
	overheadAgents         int
	raySlots               int
	overheadSleep          time.Duration
	scaleTrials            int
	simAgents              int
	simFor                 time.Duration
	colds, warms, steps    int
	failovers              int
	// checkpointSizes are the checkpoint sizes, measured checkpointReps
	// times each (throughput) and saved pauseCheckpoints times by each
	// trial (the pause).
	checkpointSizes  []int64
	checkpointReps   int
	pauseCheckpoints int
	// apiTrials is the finished study the API reads, apiReads times
	// from its cache; historyWriters trials at once stream historyTrials
	// trials of historySteps reports, then chunks fill the history up to
	// historyRead trials, read back in full.
	apiTrials, apiReads                         int
	historyWriters, historyTrials, historySteps int
	historyRead                                 int
}

// SyncInterval is the JetStream flush interval the synchronous writes are
// compared with: nats-server's own default (2 minutes), which no window
// of the suite reaches, so those runs do no fsync in NATS at all.
const SyncInterval = 2 * time.Minute

// Trial counts of the dispatch runs. They are not the same on both sides:
// the same count would give asymptote's 2,000 trials/s a window of tens of
// milliseconds next to Optuna's seconds, or Optuna's 50 trials/s on
// PostgreSQL windows of 40 s per run. Each count is sized instead for a
// window of about a second or more on the 2-core machine, and the report
// prints every window and each ratio's range over the repetitions.
const (
	dispatchTrials      = 2000
	optunaRDBTrials     = 100
	optunaJournalTrials = 500
)

func (o *Options) sizes() sizes {
	if o.Quick {
		return sizes{
			repeats: 1, concurrency: []int{1, 2}, agents: []int{1, 2}, defaultSlots: DefaultSlots(),
			dispatchTrials: 100, optunaTrials: 20, journalN: 50, syncInterval: SyncInterval,
			overheadTrials: 40, slots: 20, overheadAgents: 2, overheadSleep: 200 * time.Millisecond, raySlots: 4,
			scaleTrials: 500, simAgents: 50, simFor: 3 * time.Second,
			colds: 2, warms: 50, steps: 1000, failovers: 1,
			checkpointSizes: []int64{10 << 20}, checkpointReps: 1, pauseCheckpoints: 2,
			apiTrials: 5000, apiReads: 1, historyWriters: 4, historyTrials: 20, historySteps: 100, historyRead: 500,
		}
	}
	return sizes{
		repeats: o.Repeats, concurrency: []int{1, 2, 4, 8}, agents: []int{1, 2, 4, 8}, defaultSlots: DefaultSlots(),
		dispatchTrials: dispatchTrials, optunaTrials: optunaRDBTrials, journalN: optunaJournalTrials, syncInterval: SyncInterval,
		overheadTrials: 2000, slots: 100, overheadAgents: 4, overheadSleep: time.Second, raySlots: RayTuneSlots,
		scaleTrials: 100_000, simAgents: 1000, simFor: 30 * time.Second,
		colds: 10, warms: 500, steps: 100_000, failovers: o.Repeats,
		checkpointSizes: []int64{10 << 20, 100 << 20, 1 << 30}, checkpointReps: o.Repeats, pauseCheckpoints: o.Repeats,
		apiTrials: 100_000, apiReads: o.Repeats, historyWriters: 16, historyTrials: 200, historySteps: 100, historyRead: 10_000,
	}
}

// optunaStorages are the Optuna storages the suite measures.
var optunaStorages = []string{"sqlite", "postgresql", "journal"}

// dispatchJob is one run of the dispatch schedule: asymptote with Config
// when Storage is "", else Optuna on Storage with Workers processes.
type dispatchJob struct {
	Rep     int
	Storage string
	Config  DispatchConfig
	Workers int
	Trials  int
}

// dispatchPlan is the throughput schedule. Repetition is the outer loop
// over both systems, so a burst of foreign load hits one repetition of
// every configuration of each rather than every repetition of one, and
// each ratio pairs runs minutes apart at most. Within a repetition:
//
//   - for each concurrency k, asymptote with k agents of one slot each,
//     then Optuna with k workers on each storage (the same-concurrency
//     comparison, each pair run back to back);
//   - then asymptote's own configuration, defaultSlots slots on each
//     agent count (with the best of all, the best-configuration
//     comparison).
//
// The first configuration of each group also runs with JetStream flushed
// every syncInterval right beside its synced run, after it in even
// repetitions and before it in odd ones, so that a drift in load cancels
// over the pairs (the cost of synchronous writes).
func dispatchPlan(sz sizes, storages []string) []dispatchJob {
	var jobs []dispatchJob
	for rep := range sz.repeats {
		ours := func(cfg DispatchConfig) {
			jobs = append(jobs, dispatchJob{Rep: rep, Config: cfg, Trials: sz.dispatchTrials})
		}
		paired := func(cfg DispatchConfig) {
			flushed := cfg
			flushed.NATSSyncInterval = sz.syncInterval
			if rep%2 == 0 {
				ours(cfg)
				ours(flushed)
			} else {
				ours(flushed)
				ours(cfg)
			}
		}
		for i, k := range sz.concurrency {
			if cfg := sameConcurrency(k); i == 0 && sz.syncInterval > 0 {
				paired(cfg)
			} else {
				ours(cfg)
			}
			for _, st := range storages {
				n := sz.optunaTrials
				if st == "journal" {
					n = sz.journalN
				}
				jobs = append(jobs, dispatchJob{Rep: rep, Storage: st, Workers: k, Trials: n})
			}
		}
		for i, a := range sz.agents {
			if cfg := (DispatchConfig{Agents: a, Slots: sz.defaultSlots}); i == 0 && sz.syncInterval > 0 {
				paired(cfg)
			} else {
				ours(cfg)
			}
		}
	}
	return jobs
}

// sameConcurrency is the asymptote configuration compared with k Optuna
// workers: k trials at once, on k agents of one slot each, as Optuna's k
// processes each run one trial at a time.
func sameConcurrency(k int) DispatchConfig { return DispatchConfig{Agents: k, Slots: k} }

// Report is the suite's outcome.
type Report struct {
	Started time.Time
	Took    time.Duration
	Machine string
	Quick   bool
	// Dispatch is every asymptote throughput run and Optuna every Optuna
	// run, in the order run (dispatchPlan).
	Dispatch []DispatchResult
	Optuna   []OptunaRun
	// OptunaErr says why there are no Optuna figures, if there are none.
	OptunaErr string
	// SameConcurrency, Best and SyncCost are the comparisons the report
	// prints, computed from Dispatch and Optuna (Summarize).
	SameConcurrency []SameConcurrencyRow
	Best            []BestRow
	SyncCost        []SyncCostRow
	Overhead        OverheadResult
	// OverheadRay is the overhead on Ray Tune's published setup: as many
	// slots as its 16 CPUs.
	OverheadRay OverheadResult
	Scale       ScaleResult
	Swarm       HeartbeatResult
	Plugins     PluginResult
	Failover    []time.Duration
	// Failover3s is failover with a 3 s lease (-lease-ttl 3s).
	Failover3s []time.Duration
	// Checkpoint is every timed operation of the checkpoint schedule, in
	// the order run; CheckpointPause what checkpoints cost a running
	// trial.
	Checkpoint      []CheckpointRun
	CheckpointPause []PauseResult
	API             APIResult
	History         HistoryResult
	// Secure is dispatch throughput with TLS and identities against
	// without, interleaved (secure.go).
	Secure []SecureRow
	// Sections are the sections run (Options.Only); empty in a report
	// that ran them all.
	Sections []string
}

// Sections are the suite's sections, in the order Run runs them.
var Sections = []string{"dispatch", "secure", "overhead", "plugins", "checkpoints", "failover", "heartbeats", "scale", "api", "history"}

// ran reports whether the report holds section.
func (r *Report) ran(section string) bool {
	return len(r.Sections) == 0 || slices.Contains(r.Sections, section)
}

// checkOnly checks that every name in only is a section.
func checkOnly(only []string) error {
	for _, s := range only {
		if !slices.Contains(Sections, s) {
			return fmt.Errorf("bench: no section %q to run alone; use one of %s", s, strings.Join(Sections, ", "))
		}
	}
	return nil
}

// Run runs the whole suite.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.setDefaults()
	if err := checkOnly(opts.Only); err != nil {
		return nil, err
	}
	sz := opts.sizes()
	rep := &Report{Started: time.Now(), Machine: machine(), Quick: opts.Quick, Sections: opts.Only}
	log := opts.Logger
	sections := map[string]func() error{
		"dispatch": func() error { return rep.dispatch(ctx, opts, sz) },
		"secure": func() (err error) {
			if rep.Secure, err = Secure(ctx, opts, sz); err != nil {
				return fmt.Errorf("secure: %w", err)
			}
			return nil
		},
		"overhead": func() (err error) {
			if rep.Overhead, err = Overhead(ctx, opts, sz.overheadTrials, sz.overheadAgents, sz.slots, sz.overheadSleep); err != nil {
				return fmt.Errorf("overhead: %w", err)
			}
			if rep.OverheadRay, err = Overhead(ctx, opts, sz.overheadTrials, sz.overheadAgents, sz.raySlots, sz.overheadSleep); err != nil {
				return fmt.Errorf("overhead on %d slots: %w", sz.raySlots, err)
			}
			return nil
		},
		"plugins": func() (err error) {
			if rep.Plugins, err = Plugins(ctx, opts, sz.colds, sz.warms, sz.steps); err != nil {
				return fmt.Errorf("plugins: %w", err)
			}
			return nil
		},
		"checkpoints": func() (err error) {
			if rep.Checkpoint, err = Checkpoints(ctx, opts, sz.checkpointSizes, sz.checkpointReps); err != nil {
				return fmt.Errorf("checkpoints: %w", err)
			}
			if rep.CheckpointPause, err = CheckpointPause(ctx, opts, sz.checkpointSizes, sz.pauseCheckpoints); err != nil {
				return fmt.Errorf("checkpoint pause: %w", err)
			}
			return nil
		},
		"failover": func() error {
			for range sz.failovers {
				d, err := Failover(ctx, opts, 0)
				if err != nil {
					return fmt.Errorf("failover: %w", err)
				}
				rep.Failover = append(rep.Failover, d)
				if d, err = Failover(ctx, opts, 3*time.Second); err != nil {
					return fmt.Errorf("failover with a 3 s lease: %w", err)
				}
				rep.Failover3s = append(rep.Failover3s, d)
			}
			return nil
		},
		"heartbeats": func() (err error) {
			if rep.Swarm, err = Heartbeats(ctx, opts, sz.simAgents, sz.simFor); err != nil {
				return fmt.Errorf("heartbeats: %w", err)
			}
			return nil
		},
		"scale": func() (err error) {
			if rep.Scale, err = Scale(ctx, opts, sz.scaleTrials, 2); err != nil {
				return fmt.Errorf("scale: %w", err)
			}
			return nil
		},
		"api": func() (err error) {
			if rep.API, err = API(ctx, opts, sz.apiTrials, sz.apiReads); err != nil {
				return fmt.Errorf("api: %w", err)
			}
			return nil
		},
		"history": func() (err error) {
			if rep.History, err = History(ctx, opts, sz.historyWriters, sz.historyTrials, sz.historySteps, sz.historyRead); err != nil {
				return fmt.Errorf("history: %w", err)
			}
			return nil
		},
	}
	for _, name := range Sections {
		if !rep.ran(name) {
			continue
		}
		log.Info("bench: start", "step", name)
		t := time.Now()
		if err := sections[name](); err != nil {
			return rep, err
		}
		log.Info("bench: done", "step", name, "took", time.Since(t).Round(time.Millisecond))
	}
	rep.Took = time.Since(rep.Started)
	return rep, nil
}

// dispatch runs the throughput schedule, both systems interleaved
// (dispatchPlan), and summarizes it.
func (rep *Report) dispatch(ctx context.Context, opts Options, sz sizes) error {
	log := opts.Logger
	storages := optunaStorages
	var peer *OptunaPeer
	if opts.NoOptuna {
		rep.OptunaErr = "skipped (-no-optuna)"
		storages = nil
	} else {
		var err error
		if peer, err = StartOptuna(ctx, opts, storages); err != nil {
			rep.OptunaErr = err.Error()
			log.Warn("bench: optuna", "error", err)
			storages = nil
		}
	}
	for _, j := range dispatchPlan(sz, storages) {
		if j.Storage == "" {
			r, err := Dispatch(ctx, opts, j.Config, j.Trials)
			if err != nil {
				if peer != nil {
					peer.Close()
				}
				return fmt.Errorf("dispatch with %s: %w", j.Config, err)
			}
			r.Rep = j.Rep
			log.Info("bench: dispatch", "config", j.Config.String(), "trials_per_s", r.TrialsPerSec)
			rep.Dispatch = append(rep.Dispatch, r)
			continue
		}
		if peer == nil {
			continue // the peer failed earlier in the schedule
		}
		r, err := peer.Run(ctx, j.Storage, j.Workers, j.Trials, j.Rep)
		if err != nil {
			rep.OptunaErr = err.Error()
			log.Warn("bench: optuna", "error", err)
			peer.Close()
			peer = nil
			continue
		}
		r.Rep = j.Rep
		rep.Optuna = append(rep.Optuna, r)
	}
	if peer != nil {
		if err := peer.Close(); err != nil {
			log.Warn("bench: optuna", "error", err)
		}
	}
	rep.Summarize()
	return nil
}

// machine describes the host in one line.
func machine() string {
	return fmt.Sprintf("%d CPUs, %s", numCPU(), cpuModel())
}
