package strategy_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/strategy"
	"asymptote.dev/asymptote/sweep"
)

var update = flag.Bool("update", false, "rewrite the golden decision logs under testdata/")

// sim runs a study of the synthetic method to its end in this process,
// with no cluster: it runs every trial a step adds at once, then asks the
// strategy for the next step, as the leader does once every trial has
// finished. Its log of decisions is what a golden file holds.
type sim struct {
	t   *testing.T
	s   *strategy.Study
	ids map[string]bool
	log strings.Builder
	// ran counts the trials run, cost sums their fidelity where the spec
	// has one (the compute a multi-fidelity search spends).
	ran  int
	cost float64
}

func newSim(t *testing.T, spec string) *sim {
	t.Helper()
	parsed, err := sweep.Parse("spec.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	m := &sim{t: t, ids: map[string]bool{}, s: &strategy.Study{
		Name: parsed.Name, Spec: parsed, Objective: parsed.Objective.Metric, Direction: string(parsed.Objective.Direction),
	}}
	m.expand()
	return m
}

// expand runs the trials of the spec's grid the study does not have yet.
func (m *sim) expand() {
	trials, err := m.s.Spec.Expand()
	if err != nil {
		m.t.Fatal(err)
	}
	m.run(trials)
}

// run runs the trials the study does not have yet and records their
// results.
func (m *sim) run(trials []sweep.Trial) {
	for _, tr := range trials {
		if m.ids[tr.ID] {
			continue
		}
		m.ids[tr.ID] = true
		res, err := synthetic.New().Run(context.Background(), &sdk.TrialRequest{TrialID: tr.ID, Params: tr.Params, Seed: tr.Seed, Threads: 1}, func(sdk.Metrics) error { return nil })
		if err != nil {
			m.t.Fatal(err)
		}
		v := res.Metrics[m.s.Objective]
		m.s.Trials = append(m.s.Trials, api.Trial{
			ID: tr.ID, Study: m.s.Name, Index: len(m.s.Trials), Method: tr.Method, Params: tr.Params, Seed: tr.Seed, Bracket: tr.Bracket,
			State: sweep.Succeeded, Result: &api.Result{Objective: &v, Metrics: res.Metrics},
		})
		m.ran++
		if s := m.s.Spec.Search; s != nil && s.Halving != nil {
			m.cost += tr.Params[s.Halving.Fidelity].(float64)
		}
	}
}

// apply applies a step as the leader does, logging it.
func (m *sim) apply(n int, st strategy.Step) {
	fmt.Fprintf(&m.log, "step %d:\n", n)
	if d := st.Decision; d != nil {
		fmt.Fprintf(&m.log, "  decision: %s\n", d.Reason)
		if len(d.Stopped) > 0 {
			fmt.Fprintf(&m.log, "  stopped: %d trials\n", len(d.Stopped))
		}
	}
	for _, x := range st.Extend {
		fmt.Fprintf(&m.log, "  extend %s=%g by %s: %s\n", x.Axis, x.Value, x.By, x.Reason)
		m.s.Extensions = append(m.s.Extensions, x)
	}
	for _, note := range st.Notes {
		fmt.Fprintf(&m.log, "  note: %s\n", note)
	}
	before := m.ran
	if len(st.Add) > 0 {
		m.run(st.Add)
	}
	if st.Spec != nil {
		m.s.Spec = st.Spec
		m.expand()
	}
	fmt.Fprintf(&m.log, "  trials added: %d (total %d)\n", m.ran-before, m.ran)
}

// search steps the study's search until it adds nothing (at most limit
// steps).
func (m *sim) search(limit int) {
	m.t.Helper()
	for n := 1; n <= limit; n++ {
		st, err := strategy.Next(m.t.Context(), m.s)
		if err != nil {
			m.t.Fatalf("step %d: %v", n, err)
		}
		m.apply(n, st)
		if !st.More() {
			return
		}
	}
	m.t.Fatalf("the search did not end within %d steps:\n%s", limit, m.log.String())
}

// golden compares the log with testdata/name.golden (rewritten with
// -update).
func (m *sim) golden(name string) {
	m.t.Helper()
	path := filepath.Join("testdata", name+".golden")
	got := m.log.String()
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			m.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			m.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		m.t.Fatalf("%v (run go test ./strategy -update to write it)", err)
	}
	if got != string(want) {
		m.t.Errorf("decision log differs from %s (run with -update if the change is intended):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// best returns the study's best objective among trials where keep holds.
func (m *sim) best(keep func(api.Trial) bool) float64 {
	var vals []float64
	for _, t := range m.s.Trials {
		if keep(t) {
			vals = append(vals, *t.Result.Objective)
		}
	}
	if len(vals) == 0 {
		m.t.Fatal("no trial to take the best of")
	}
	return slices.Min(vals)
}

// rungStudy is a multi-fidelity study of the synthetic law without its
// search section: nine weight decays at 1e9 tokens.
const rungStudy = `name: sha
method: synthetic
space:
  weight_decay: {range: [0.01, 1], count: 9, scale: log}
fixed:
  params: 1e8
  tokens: 1e9
  noise: 0.01
derived:
  unique_tokens: tokens
`

// TestHalvingStudy runs successive halving over tokens on the synthetic
// law, as the coordinator's cluster test does: 9 configurations, then the
// best 3, 1 and 1 at three times the tokens each, close to the grid's best
// at the top fidelity for a fraction of its compute.
func TestHalvingStudy(t *testing.T) {
	const spec = rungStudy + `search:
  halving: {fidelity: tokens, max: 2.7e10, eta: 3}
`
	m := newSim(t, spec)
	m.search(10)
	if m.ran != 9+3+1+1 {
		t.Errorf("ran %d trials, want 9, 3, 1 and 1 on the four rungs", m.ran)
	}
	top := func(tr api.Trial) bool { return tr.Params["tokens"] == 2.7e10 }
	// The grid: every weight decay at the top fidelity.
	grid := newSim(t, strings.Replace(strings.Split(spec, "search:")[0], "tokens: 1e9", "tokens: 2.7e10", 1))
	if sha, full := m.best(top), grid.best(top); sha > full*1.01 {
		t.Errorf("halving's best %.5f is more than 1%% worse than the grid's %.5f", sha, full)
	}
	if frac := m.cost / (9 * 2.7e10); frac > 0.25 {
		t.Errorf("halving spent %.0f%% of the grid's compute, want at most 25%%", 100*frac)
	}
	m.golden("halving")
}

// TestAsymptoteStudy narrows the asymptote's interval by adding model
// sizes until it is within the target or the added values are spent.
func TestAsymptoteStudy(t *testing.T) {
	m := newSim(t, `name: asym
method: synthetic
space:
  params: [1e6, 3e6, 1e7, 3e7]
fixed:
  tokens: 1e12
  noise: 0.005
seeds: [0, 1]
analysis:
  fit: {law: power, x: params, bootstrap: 100}
search:
  asymptote: {target_width: 0.1, max_values: 6}
`)
	m.search(10)
	if len(m.s.Extensions) == 0 {
		t.Errorf("the search added no model size:\n%s", m.log.String())
	}
	for _, x := range m.s.Extensions {
		if x.By != "asymptote" || x.Value <= 3e7 {
			t.Errorf("extension %+v: want sizes above the grid, added by the asymptote search", x)
		}
	}
	m.golden("asymptote")
}

// TestCrossoverStudy pins down where two recipes' curves cross.
func TestCrossoverStudy(t *testing.T) {
	m := newSim(t, `name: cross
method: synthetic
space:
  params: [1e5, 1e7, 1e9, 1e11]
  alpha: [0.3, 0.4]
fixed:
  tokens: 1e15
  noise: 0.03
derived:
  E: 1.8 - (alpha - 0.3) * 2
  A: 400 + (alpha - 0.3) * 16000
seeds: [0, 1]
analysis:
  fit: {law: power, x: params, group: alpha, bootstrap: 0}
search:
  crossover: {ratio: 1.6, max_values: 10}
`)
	m.search(12)
	if len(m.s.Extensions) == 0 || len(m.s.Trials) <= 16 {
		t.Errorf("the search measured no new size:\n%s", m.log.String())
	}
	m.golden("crossover")
}

// TestDegradationStudy bisects epochs for where repeated data starts to
// hurt.
func TestDegradationStudy(t *testing.T) {
	m := newSim(t, `name: degrade
method: synthetic
space:
  epochs: [1, 8, 64, 512]
fixed:
  params: 1e9
  unique_tokens: 1e9
  weight_decay: 0.1
  wd_penalty: 0.05
derived:
  tokens: unique_tokens * epochs
search:
  degradation: {axis: epochs, resolution: 1.5, max_values: 12}
`)
	m.search(20)
	if n := len(m.s.Extensions); n == 0 || n > 12 {
		t.Errorf("the search added %d values, want between 1 and max_values 12:\n%s", n, m.log.String())
	}
	m.golden("degradation")
}

// TestEdgesStudy extends the grid past an edge a best run sits on, after
// each refit, until the best is interior or the plan's extend values per
// edge are spent.
func TestEdgesStudy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		wdOpt  string
		extend int
		want   []float64
	}{
		// The optimum at 1 is certified by 0.1 and 10.
		{"interior", "1", 3, []float64{1, 10}},
		// An optimum far past the grid stops at the plan's limit.
		{"limit", "1e4", 2, []float64{1, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, fmt.Sprintf(`name: edge
method: synthetic
space:
  params: [1e7, 1e8, 1e9]
  weight_decay: [0.01, 0.1]
fixed:
  tokens: 1e11
  wd_opt: %s
analysis:
  fit: {law: power, x: params, best_over: [weight_decay], bootstrap: 0, extend: %d}
`, tc.wdOpt, tc.extend))
			for n := 1; n <= 6; n++ {
				sum, err := analysis.Run(t.Context(), m.s.Spec, m.s.Trials, m.s.Direction, analysis.Options{Workers: 1})
				if err != nil {
					t.Fatal(err)
				}
				m.s.Analysis = sum
				st := strategy.Edges(m.s)
				m.apply(n, st)
				if !st.More() {
					break
				}
			}
			var added []float64
			for _, x := range m.s.Extensions {
				if x.Axis != "weight_decay" || x.By != "edge" || !x.Last {
					t.Errorf("extension %+v: want weight decays past the largest", x)
				}
				added = append(added, x.Value)
			}
			if !slices.Equal(added, tc.want) {
				t.Errorf("added %v, want %v:\n%s", added, tc.want, m.log.String())
			}
			m.golden("edges-" + tc.name)
		})
	}
}
