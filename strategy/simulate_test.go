package strategy_test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
	m.searchWith(limit, strategy.Next)
}

// searchWith is search with step as the strategy.
func (m *sim) searchWith(limit int, step func(context.Context, *strategy.Study) (strategy.Step, error)) {
	m.t.Helper()
	for n := 1; n <= limit; n++ {
		st, err := step(m.t.Context(), m.s)
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

// searchBoth runs spec's search to its end (at most 12 steps) with the
// study's strategy, and again with other.
func searchBoth(t *testing.T, spec string, other func(context.Context, *strategy.Study) (strategy.Step, error)) (*sim, *sim) {
	t.Helper()
	a, b := newSim(t, spec), newSim(t, spec)
	a.search(12)
	b.searchWith(12, other)
	return a, b
}

// addedSize sums the params of the trials past the grid's first grid
// trials: the compute a scale search added.
func (m *sim) addedSize(grid int) float64 {
	c := 0.0
	for _, tr := range m.s.Trials[grid:] {
		c += tr.Params["params"].(float64)
	}
	return c
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

// asymptoteSpec is the asymptote search's study: four sizes, two seeds,
// E's interval 0.48 wide to start.
const asymptoteSpec = `name: asym
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
`

// TestAsymptoteStudy narrows the asymptote's interval by adding model
// sizes until it is within the target or the added values are spent.
func TestAsymptoteStudy(t *testing.T) {
	m := newSim(t, asymptoteSpec)
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

// TestAsymptoteCostOfCertainty runs the asymptote search free to add
// sizes below the grid as well as above, once choosing by the cost of
// certainty's prediction and once by the refit-and-bootstrap prediction it
// replaced, on the same synthetic law. Both must reach the target; the
// cost of certainty's additions must cost no more (the sum of the added
// trials' sizes), and at every step its predicted width must be within a
// factor of 1.5 of the width the next step measured. (The measured width
// is itself a 100-resample bootstrap of 10 to 20 noisy points: on this
// study the predictions land 0.72 to 1.38 times the measured width.)
func TestAsymptoteCostOfCertainty(t *testing.T) {
	spec := strings.Replace(asymptoteSpec, "max_values: 6}", "max_values: 8, both: true}", 1)
	measured := regexp.MustCompile(`E's 95% interval is ([0-9.e+-]+) wide`)
	predicted := regexp.MustCompile(`predicted to narrow it to ([0-9.e+-]+), the most`)
	cost := func(m *sim) float64 { return m.addedSize(8) }
	reached := func(m *sim) bool { return strings.Contains(m.log.String(), "within the target") }
	now, before := searchBoth(t, spec, strategy.AsymptoteRefit)
	t.Logf("cost of certainty: %d trials, added sizes sum to %.3g; refit rule: %d trials, %.3g", now.ran, cost(now), before.ran, cost(before))
	if !reached(now) || !reached(before) {
		t.Fatalf("a search did not reach the target:\ncost of certainty:\n%s\nrefit rule:\n%s", now.log.String(), before.log.String())
	}
	if cost(now) > cost(before) {
		t.Errorf("the cost of certainty's additions cost %.3g, the refit rule's %.3g", cost(now), cost(before))
	}
	for _, m := range []*sim{now, before} {
		preds, next := predictions(t, m, measured, predicted, func(g []string) float64 { return parseFloat(g[1]) })
		var ratios []float64
		for i, p := range preds {
			ratios = append(ratios, p/next[i])
		}
		if m == before {
			t.Logf("refit rule: predicted over measured width %.2f", ratios)
			continue
		}
		t.Logf("cost of certainty: predicted over measured width %.2f", ratios)
		for i, r := range ratios {
			if r < 0.5 || r > 2 {
				t.Errorf("step %d: predicted width %.2f times the one measured next", i+1, r)
			}
		}
		if med := median(ratios); med < 0.8 || med > 1.25 {
			t.Errorf("median ratio of predicted to measured width %.2f, want 0.8 to 1.25", med)
		}
	}
	now.golden("asymptote-both")
}

// predictions returns, per step of m's log that made a prediction, the
// value predicted and the one the next step measured: measured matches a
// decision's measured value, read by value from its submatches, and
// predicted its prediction (the first submatch).
func predictions(t *testing.T, m *sim, measured, predicted *regexp.Regexp, value func(g []string) float64) (preds, next []float64) {
	t.Helper()
	var got []float64
	for _, line := range strings.Split(m.log.String(), "\n") {
		if !strings.Contains(line, "decision:") {
			continue
		}
		if g := measured.FindStringSubmatch(line); g != nil {
			got = append(got, value(g))
		}
		if g := predicted.FindStringSubmatch(line); g != nil {
			preds = append(preds, parseFloat(g[1]))
		}
	}
	if len(preds) == 0 || len(got) != len(preds)+1 {
		t.Fatalf("%d predictions for %d measured values:\n%s", len(preds), len(got), m.log.String())
	}
	return preds, got[1:]
}

func parseFloat(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// crossoverSpec is the crossover search's study: two recipes crossing
// near 6e6 parameters, measured at four sizes two decades apart.
const crossoverSpec = `name: cross
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
`

// TestCrossoverCostOfCertainty runs the crossover search, which measures
// at the estimated crossing and states the cost of certainty's prediction
// of the ratio after it, and beside it the alternative that chooses, among
// values near the crossing, the one predicted to narrow the interval most
// per unit of cost. The search must reach the target ratio; each of its
// predictions must be within a factor of 2 of the ratio the next step
// measured, in log terms (log predicted / log measured in 0.5–2: the
// measured ratio is a 200-resample percentile interval of a root that
// moves with every added run). The alternative is logged, not required to
// win: on this study it does not (docs/scaling.md).
func TestCrossoverCostOfCertainty(t *testing.T) {
	cost := func(m *sim) float64 { return m.addedSize(16) }
	reached := func(m *sim) bool { return strings.Contains(m.log.String(), "within the target ratio") }
	now, cheap := searchBoth(t, crossoverSpec, strategy.CrossoverCheapest)
	t.Logf("at the estimate: %d trials, added sizes sum to %.4g, target reached %v; cheapest per unit of cost: %d trials, %.4g, reached %v",
		now.ran, cost(now), reached(now), cheap.ran, cost(cheap), reached(cheap))
	if !reached(now) {
		t.Fatalf("the search did not reach the target:\n%s", now.log.String())
	}
	measured := regexp.MustCompile(`95% interval \(([0-9.e+-]+), ([0-9.e+-]+)\)`)
	predicted := regexp.MustCompile(`predicted to narrow it to ([0-9.e+-]+)×`)
	preds, ratios := predictions(t, now, measured, predicted, func(g []string) float64 { return parseFloat(g[2]) / parseFloat(g[1]) })
	var logs []float64
	for i, p := range preds {
		r := math.Log(p) / math.Log(ratios[i])
		logs = append(logs, r)
		if r < 0.5 || r > 2 {
			t.Errorf("step %d: predicted %.3f×, the next step measured %.3f×", i+1, p, ratios[i])
		}
	}
	t.Logf("log predicted / log measured ratio per step: %.2f (median %.2f)", logs, median(logs))
}

// TestCrossoverStudy pins down where two recipes' curves cross.
func TestCrossoverStudy(t *testing.T) {
	m := newSim(t, crossoverSpec)
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
