package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The dispatch targets: asymptote's throughput over Optuna's, on each
// storage with a target, in both comparisons.
var dispatchTargets = []struct {
	Storage string
	Name    string
	Times   float64
}{
	{"postgresql", "PostgreSQL", 40},
	{"journal", "JournalFile", 5},
}

// storageNames are the Optuna storages' names in the report.
var storageNames = map[string]string{"sqlite": "SQLite", "postgresql": "PostgreSQL", "journal": "JournalFile"}

// Figure is the median of a configuration's runs.
type Figure struct {
	TrialsPerSec float64
	// Seconds is the median measured window.
	Seconds float64
	// Clean counts the runs in the median; All every run (Optuna runs in
	// which a worker crashed are left out).
	Clean, All int
}

// Ratio is asymptote's figure over a peer's.
type Ratio struct {
	// Of the medians; 0 when either side has none.
	Ratio float64
	// Min and Max are over the repetitions with a clean run on both
	// sides, each ratio pairing the two runs of one repetition; Pairs
	// counts them.
	Min, Max float64
	Pairs    int
}

// Met is whether r is at least target.
func (r Ratio) Met(target float64) bool { return r.Ratio > 0 && r.Ratio >= target }

// SameConcurrencyRow compares the two systems running the same number of
// trials at once: asymptote with Concurrency slots, Optuna with as many
// worker processes.
type SameConcurrencyRow struct {
	Concurrency int
	Config      DispatchConfig
	Asymptote   Figure
	// Optuna and Ratios are by storage ("sqlite", "postgresql",
	// "journal").
	Optuna map[string]Figure
	Ratios map[string]Ratio
	// Met is whether every target is met; Verdict says which are not.
	Met     bool
	Verdict string
}

// BestRow compares each system at its best configuration on this machine:
// asymptote's fastest configuration (of those that sync JetStream, the
// default) and Optuna's fastest worker count on Storage.
type BestRow struct {
	Storage   string
	Workers   int
	Optuna    Figure
	Config    DispatchConfig
	Asymptote Figure
	Ratio     Ratio
	// Target is 0 for a storage without one.
	Target float64
	Met    bool
}

// SyncCostRow is what syncing every JetStream write costs one
// configuration: its runs with the default (sync before acknowledging)
// over its runs with JetStream flushed every Interval, paired by
// repetition.
type SyncCostRow struct {
	Config   DispatchConfig
	Interval time.Duration
	Synced   Figure
	Flushed  Figure
	// Ratio is synced over flushed trials/s; Cost is 1 − Ratio in percent.
	Ratio Ratio
	Cost  float64
}

// Summarize computes the comparisons from the runs.
func (r *Report) Summarize() {
	r.SameConcurrency = r.sameConcurrency()
	r.Best = r.best()
	r.SyncCost = r.syncCost()
}

// byRep is one configuration's clean runs' trials/s by repetition.
type byRep map[int]float64

func (r *Report) oursByRep(cfg DispatchConfig) (Figure, byRep) {
	var tps, secs []float64
	reps := byRep{}
	for _, d := range r.Dispatch {
		if d.DispatchConfig != cfg {
			continue
		}
		tps, secs = append(tps, d.TrialsPerSec), append(secs, d.Seconds)
		reps[d.Rep] = d.TrialsPerSec
	}
	return Figure{TrialsPerSec: median(tps), Seconds: median(secs), Clean: len(tps), All: len(tps)}, reps
}

func (r *Report) optunaByRep(storage string, workers int) (Figure, byRep) {
	var tps, secs []float64
	reps := byRep{}
	all := 0
	for _, o := range r.Optuna {
		if o.Storage != storage || o.Workers != workers {
			continue
		}
		all++
		if o.Error == "" && o.FailedWorkers == 0 && o.TrialsPerSec > 0 {
			tps, secs = append(tps, o.TrialsPerSec), append(secs, o.Seconds)
			reps[o.Rep] = o.TrialsPerSec
		}
	}
	return Figure{TrialsPerSec: median(tps), Seconds: median(secs), Clean: len(tps), All: all}, reps
}

func ratioOf(ours Figure, oursReps byRep, peer Figure, peerReps byRep) Ratio {
	var q Ratio
	if ours.TrialsPerSec <= 0 || peer.TrialsPerSec <= 0 {
		return q
	}
	q.Ratio = ours.TrialsPerSec / peer.TrialsPerSec
	for rep, o := range oursReps {
		p, ok := peerReps[rep]
		if !ok || p <= 0 {
			continue
		}
		x := o / p
		if q.Pairs == 0 || x < q.Min {
			q.Min = x
		}
		if q.Pairs == 0 || x > q.Max {
			q.Max = x
		}
		q.Pairs++
	}
	return q
}

// concurrencies are the Optuna worker counts run and the asymptote
// same-concurrency configurations run, in order.
func (r *Report) concurrencies() []int {
	var ks []int
	for _, o := range r.Optuna {
		ks = append(ks, o.Workers)
	}
	for _, d := range r.Dispatch {
		if d.DispatchConfig == sameConcurrency(d.Slots) {
			ks = append(ks, d.Slots)
		}
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

func (r *Report) sameConcurrency() []SameConcurrencyRow {
	var rows []SameConcurrencyRow
	for _, k := range r.concurrencies() {
		cfg := sameConcurrency(k)
		ours, oursReps := r.oursByRep(cfg)
		row := SameConcurrencyRow{Concurrency: k, Config: cfg, Asymptote: ours, Optuna: map[string]Figure{}, Ratios: map[string]Ratio{}, Met: true}
		for _, st := range optunaStorages {
			peer, peerReps := r.optunaByRep(st, k)
			row.Optuna[st] = peer
			row.Ratios[st] = ratioOf(ours, oursReps, peer, peerReps)
		}
		var missed, unknown []string
		for _, t := range dispatchTargets {
			q := row.Ratios[t.Storage]
			switch {
			case q.Ratio <= 0:
				unknown = append(unknown, t.Name)
			case !q.Met(t.Times):
				missed = append(missed, fmt.Sprintf("%s (%.1f× < %g×)", t.Name, q.Ratio, t.Times))
			}
		}
		row.Met = len(missed) == 0 && len(unknown) == 0
		row.Verdict = verdictOf(missed, unknown)
		rows = append(rows, row)
	}
	return rows
}

// verdictOf says which targets are missed and which cannot be told.
func verdictOf(missed, unknown []string) string {
	var parts []string
	if len(missed) > 0 {
		parts = append(parts, "missed: "+strings.Join(missed, ", "))
	}
	if len(unknown) > 0 {
		parts = append(parts, "no figure for "+strings.Join(unknown, ", "))
	}
	if len(parts) == 0 {
		names := make([]string, len(dispatchTargets))
		for i, t := range dispatchTargets {
			names[i] = fmt.Sprintf("%g× %s", t.Times, t.Name)
		}
		return "met (" + strings.Join(names, ", ") + ")"
	}
	return strings.Join(parts, "; ")
}

// configs are the asymptote configurations run, in the order first run.
func (r *Report) configs() []DispatchConfig {
	var cs []DispatchConfig
	for _, d := range r.Dispatch {
		if !slices.Contains(cs, d.DispatchConfig) {
			cs = append(cs, d.DispatchConfig)
		}
	}
	return cs
}

// bestOurs is asymptote's fastest configuration with the default
// durability (every JetStream write synced).
func (r *Report) bestOurs() (DispatchConfig, Figure, byRep) {
	var (
		best DispatchConfig
		fig  Figure
		reps byRep
	)
	for _, c := range r.configs() {
		if c.NATSSyncInterval != 0 {
			continue
		}
		if f, rr := r.oursByRep(c); f.TrialsPerSec > fig.TrialsPerSec {
			best, fig, reps = c, f, rr
		}
	}
	return best, fig, reps
}

func (r *Report) best() []BestRow {
	cfg, ours, oursReps := r.bestOurs()
	if ours.TrialsPerSec <= 0 {
		return nil
	}
	var rows []BestRow
	for _, st := range optunaStorages {
		row := BestRow{Storage: st, Config: cfg, Asymptote: ours}
		var peerReps byRep
		for _, k := range r.concurrencies() {
			if f, rr := r.optunaByRep(st, k); f.TrialsPerSec > row.Optuna.TrialsPerSec {
				row.Workers, row.Optuna, peerReps = k, f, rr
			}
		}
		row.Ratio = ratioOf(ours, oursReps, row.Optuna, peerReps)
		for _, t := range dispatchTargets {
			if t.Storage == st {
				row.Target = t.Times
				row.Met = row.Ratio.Met(t.Times)
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func (r *Report) syncCost() []SyncCostRow {
	var rows []SyncCostRow
	for _, c := range r.configs() {
		if c.NATSSyncInterval == 0 {
			continue
		}
		synced := c
		synced.NATSSyncInterval = 0
		s, sReps := r.oursByRep(synced)
		f, fReps := r.oursByRep(c)
		row := SyncCostRow{Config: synced, Interval: c.NATSSyncInterval, Synced: s, Flushed: f, Ratio: ratioOf(s, sReps, f, fReps)}
		if row.Ratio.Ratio > 0 {
			row.Cost = 100 * (1 - row.Ratio.Ratio)
		}
		rows = append(rows, row)
	}
	return rows
}
