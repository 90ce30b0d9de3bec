package scaling

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// The coverage study draws data from known parameters with known noise,
// fits, bootstraps, and counts how often each free parameter's 95% interval
// contains the truth. Each data set comes from its own random stream, so a
// parameter's count of hits over n data sets is Binomial(n, c), with c the
// interval's true coverage, and whether c is acceptable is a one-sided
// binomial test: the test fails when the hits fall below a threshold k.
// Both n and k are derived from the binomial distribution below, not
// chosen by hand.
//
// The default run (also under -short, which CI uses) is small: it is built
// to catch a badly broken interval, not a slightly miscalibrated one. The
// long run tells 95% coverage from 90%:
//
//	SCALING_LONG=1 go test -run Coverage -v ./scaling
const (
	coverageNominal = 0.95

	// Long run: a correct interval (c = 0.95) fails with probability at
	// most 0.01 over all the parameters together (Bonferroni: α = 0.01/m
	// per parameter for m parameters tested, whatever their dependence),
	// and an interval of coverage 0.90 fails with probability at least
	// 0.99 (β = 0.01 per parameter). For the m = 13 free parameters of
	// coverageCases the smallest n that does both is 808 data sets per
	// law with k = 747 hits (92.45%): P(X < 747 | 808, 0.95) = 7.0e-4 per
	// parameter (9.1e-3 over 13), P(X ≥ 747 | 808, 0.90) = 9.7e-3. A
	// coverage of 0.93 still passes with probability 0.76, 0.92 with 0.35:
	// the run separates 95% from 90%, not from 93%. 1,000 resamples per
	// interval, as the package's default. (Measured: the power law's A
	// covers 729 of 808, 0.902, and fails; docs/scaling.md has the rest.)
	longBad, longAlpha, longBeta, longResamples = 0.90, 0.01, 0.01, 1000

	// Default run: a correct interval passes with probability above
	// 0.999 over all parameters together (α = 0.001/m per parameter),
	// and an interval of coverage 0.5 or less fails with probability at
	// least 0.999 (β = 0.001). For m = 13 the smallest n is 35 data sets
	// with k = 27 hits (77%): P(X < 27 | 35, 0.95) = 4.2e-5 per parameter
	// (5.5e-4 over 13), P(X ≥ 27 | 35, 0.5) = 9.4e-4. A zero-width
	// interval, which never holds the truth, scores 0 hits. 200 resamples
	// keep the run at a few seconds of CPU.
	shortBad, shortAlpha, shortBeta, shortResamples = 0.5, 0.001, 0.001, 200

	// maxWidthRatio bounds the median interval width over the data sets,
	// in units of 2·1.96 times the estimator's spread across them (its
	// interquartile range / 1.349, log scale for positive parameters):
	// the width a normal-theory 95% interval would have. Coverage alone
	// cannot catch an interval that is vacuously wide (an infinite one
	// always covers). Skewed percentile intervals are legitimately wider
	// than that (the ensemble law's run 3 to 7 times), so the bound only
	// rejects intervals an order of magnitude too wide to say anything.
	maxWidthRatio = 20
)

// coverageDesign is the size and acceptance threshold of a one-sided
// binomial test of coverage: accept when at least minHits of sets data
// sets hold the truth.
type coverageDesign struct {
	sets, minHits int
	// failCorrect is P(hits < minHits) at the nominal coverage (per
	// parameter); passBad is P(hits ≥ minHits) at the coverage bad.
	failCorrect, passBad, bad float64
}

// binomialDesign returns the smallest number of data sets n for which some
// threshold k has P(X < k | n, nominal) ≤ alpha and P(X ≥ k | n, bad) ≤
// beta, X being the hit count, with the largest such k (the most power for
// the same significance).
func binomialDesign(nominal, bad, alpha, beta float64) (coverageDesign, error) {
	for n := 1; n <= 100000; n++ {
		good := distuv.Binomial{N: float64(n), P: nominal}
		// P(X < k) = CDF(k − 1) grows with k: take the largest k whose
		// false-failure probability is within alpha.
		k := 0
		for k < n && good.CDF(float64(k)) <= alpha {
			k++
		}
		if k == 0 {
			continue
		}
		worse := distuv.Binomial{N: float64(n), P: bad}
		if pass := 1 - worse.CDF(float64(k-1)); pass <= beta {
			return coverageDesign{sets: n, minHits: k, failCorrect: good.CDF(float64(k - 1)), passBad: pass, bad: bad}, nil
		}
	}
	return coverageDesign{}, fmt.Errorf("no design up to 100,000 data sets tells %g from %g", nominal, bad)
}

// coveragePlan returns the design and resamples of this run, for m
// parameters tested.
func coveragePlan(m int) (coverageDesign, int, error) {
	if os.Getenv("SCALING_LONG") != "" {
		d, err := binomialDesign(coverageNominal, longBad, longAlpha/float64(m), longBeta)
		return d, longResamples, err
	}
	d, err := binomialDesign(coverageNominal, shortBad, shortAlpha/float64(m), shortBeta)
	return d, shortResamples, err
}

type coverageCase struct {
	law   Law
	truth []float64
	opts  Options
	// draw returns the design (losses filled by the caller).
	draw  func(rng *rand.Rand) []Obs
	noise float64 // log-normal σ
}

func coverageCases() []coverageCase {
	grid1 := func(rng *rand.Rand) []Obs {
		var obs []Obs
		for i := range 24 {
			x := math.Pow(10, 0.5+3*float64(i)/23)
			obs = append(obs, Obs{X: x})
		}
		return obs
	}
	chin := func(rng *rand.Rand) []Obs {
		var obs []Obs
		for i := range 6 {
			n := math.Pow(10, 7.5+0.5*float64(i))
			for j := range 6 {
				d := n * math.Pow(10, 0.3+0.4*float64(j))
				obs = append(obs, Obs{N: n, D: d})
			}
		}
		return obs
	}
	data := func(rng *rand.Rand) []Obs {
		var obs []Obs
		for _, n := range []float64{1e8, 4e8, 1.6e9} {
			for _, u := range []float64{2e9, 8e9} {
				for _, ep := range []float64{1, 2, 4, 8, 16, 32, 64} {
					obs = append(obs, Obs{N: n, D: u * ep, U: u})
				}
			}
		}
		return obs
	}
	members := func(rng *rand.Rand) []Obs {
		var obs []Obs
		for k := 1; k <= 12; k++ {
			obs = append(obs, Obs{X: float64(k)})
		}
		return obs
	}
	base := datablationsBase
	return []coverageCase{
		{law: Power, truth: []float64{2.0, 5.0, 0.4}, draw: grid1, noise: 0.01,
			opts: Options{Loss: Loss{Kind: LeastSquares}}},
		{law: Ensemble, truth: []float64{3.3, 0.25, 0.8}, draw: members, noise: 0.002,
			opts: Options{Loss: Loss{Kind: LeastSquares}}},
		{law: Chinchilla, truth: []float64{1.8, 480, 2100, 0.34, 0.37}, draw: chin, noise: 0.01,
			opts: Options{RandomStarts: 20}},
		{law: DataConstrained, truth: datablationsParams(5, 3), draw: data, noise: 0.005,
			opts: Options{Fixed: base}},
	}
}

// coverageStudy holds, for each free parameter of one law, the truth and
// every data set's estimate and interval.
type coverageStudy struct {
	names []string
	pos   []bool
	truth []float64
	est   [][]float64
	ivs   [][]Interval
}

// runCoverage fits and bootstraps c on sets data sets.
func runCoverage(t *testing.T, c coverageCase, sets, resamples int) coverageStudy {
	t.Helper()
	pos := c.law.positive()
	var st coverageStudy
	var idx []int
	for j, name := range c.law.Params() {
		if !c.opts.fixed(name) {
			idx = append(idx, j)
			st.names, st.pos, st.truth = append(st.names, name), append(st.pos, pos[j]), append(st.truth, c.truth[j])
		}
	}
	st.est, st.ivs = make([][]float64, len(idx)), make([][]Interval, len(idx))
	for s := range sets {
		rng := rand.New(rand.NewPCG(uint64(s), 99))
		obs := c.draw(rng)
		for i := range obs {
			obs[i].Loss = c.law.Predict(c.truth, obs[i]) * math.Exp(c.noise*rng.NormFloat64())
		}
		o := c.opts
		o.Seed = uint64(s)
		f, err := FitLaw(context.Background(), c.law, obs, o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Bootstrap(context.Background(), f, BootstrapOptions{Resamples: resamples, Seed: uint64(s)})
		if err != nil {
			t.Fatal(err)
		}
		for k, j := range idx {
			st.est[k] = append(st.est[k], f.Params[j])
			st.ivs[k] = append(st.ivs[k], b.Intervals[j])
		}
	}
	return st
}

// coverageOutcome is one parameter's result.
type coverageOutcome struct {
	name        string
	hits, sets  int
	widthRatio  float64
	lo, hi      float64 // Clopper–Pearson 95% interval for the coverage
	failures    []string
	coverageLow bool
}

// assess applies d's acceptance threshold and the width bound to every
// parameter of st.
func (st coverageStudy) assess(d coverageDesign) []coverageOutcome {
	var out []coverageOutcome
	for k, name := range st.names {
		scale := func(v float64) float64 {
			if st.pos[k] {
				return math.Log(v)
			}
			return v
		}
		r := coverageOutcome{name: name, sets: len(st.ivs[k])}
		var est, width []float64
		for i, iv := range st.ivs[k] {
			if math.IsNaN(iv.Lo) || math.IsInf(iv.Lo, 0) || math.IsNaN(iv.Hi) || math.IsInf(iv.Hi, 0) || iv.Lo > iv.Hi {
				r.failures = append(r.failures, fmt.Sprintf("data set %d: (%g, %g) is not a finite interval", i, iv.Lo, iv.Hi))
				continue
			}
			if iv.Contains(st.truth[k]) {
				r.hits++
			}
			est, width = append(est, scale(st.est[k][i])), append(width, scale(iv.Hi)-scale(iv.Lo))
		}
		if r.sets != d.sets {
			r.failures = append(r.failures, fmt.Sprintf("%d data sets, the design needs %d", r.sets, d.sets))
		}
		r.lo, r.hi = clopperPearson(r.hits, r.sets, 0.95)
		if r.hits < d.minHits {
			r.coverageLow = true
			r.failures = append(r.failures, fmt.Sprintf(
				"95%% interval held the truth in %d of %d data sets (%.3f), below the %d a correct interval reaches with probability %.6f",
				r.hits, r.sets, float64(r.hits)/float64(r.sets), d.minHits, 1-d.failCorrect))
		}
		e := sortedCopy(est)
		spread := (quantile(e, 0.75) - quantile(e, 0.25)) / 1.349
		r.widthRatio = quantile(sortedCopy(width), 0.5) / (2 * 1.96 * spread)
		if !(r.widthRatio <= maxWidthRatio) {
			r.failures = append(r.failures, fmt.Sprintf(
				"median interval width is %.3g times that of a normal-theory interval from the estimates' spread: the interval says nothing", r.widthRatio))
		}
		out = append(out, r)
	}
	return out
}

// withIntervals returns st with every interval replaced by f(estimate,
// whether the parameter is positive).
func (st coverageStudy) withIntervals(f func(est float64, pos bool) Interval) coverageStudy {
	out := st
	out.ivs = make([][]Interval, len(st.ivs))
	for k := range st.ivs {
		for _, est := range st.est[k] {
			out.ivs[k] = append(out.ivs[k], f(est, st.pos[k]))
		}
	}
	return out
}

// coverageParams is the number of free parameters over cases: the number
// of binomial tests one run makes.
func coverageParams(cases []coverageCase) int {
	m := 0
	for _, c := range cases {
		for _, name := range c.law.Params() {
			if !c.opts.fixed(name) {
				m++
			}
		}
	}
	return m
}

func TestCoverage(t *testing.T) {
	cases := coverageCases()
	m := coverageParams(cases)
	d, resamples, err := coveragePlan(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d data sets per law, %d resamples: a parameter fails below %d hits (%.2f%%); per parameter P(fail | coverage %.2f) = %.2g (over %d parameters at most %.2g), P(pass | coverage %.2f) = %.2g",
		d.sets, resamples, d.minHits, 100*float64(d.minHits)/float64(d.sets), coverageNominal, d.failCorrect, m, float64(m)*d.failCorrect, d.bad, d.passBad)
	for _, c := range cases {
		t.Run(c.law.Name(), func(t *testing.T) {
			st := runCoverage(t, c, d.sets, resamples)
			var report string
			for _, r := range st.assess(d) {
				report += fmt.Sprintf(" %s %.3f (%.3f–%.3f, width ×%.2f)", r.name, float64(r.hits)/float64(r.sets), r.lo, r.hi, r.widthRatio)
				for _, msg := range r.failures {
					t.Errorf("%s: %s", r.name, msg)
				}
			}
			t.Logf("coverage (95%% Clopper–Pearson interval; median width over 3.92 × the estimates' spread) over %d data sets:%s", d.sets, report)
			// The same data sets must fail broken intervals, so the
			// check above cannot pass vacuously: a zero-width interval at
			// the estimate on the coverage threshold, an unbounded one on
			// the width bound.
			broken := []struct {
				name string
				iv   func(est float64, pos bool) Interval
				low  bool // fails on coverage, else on width
			}{
				{"zero-width", func(est float64, _ bool) Interval { return Interval{est, est} }, true},
				{"unbounded", func(est float64, pos bool) Interval {
					if pos {
						return Interval{est / 1e100, est * 1e100}
					}
					return Interval{est - 1e100, est + 1e100}
				}, false},
			}
			for _, b := range broken {
				for _, r := range st.withIntervals(b.iv).assess(d) {
					if len(r.failures) == 0 || r.coverageLow != b.low {
						t.Errorf("%s intervals for %s: failures %q (coverage low: %v)", b.name, r.name, r.failures, r.coverageLow)
					}
				}
			}
		})
	}
}

// clopperPearson is the exact two-sided interval at level for a binomial
// proportion of k in n, from the beta quantiles.
func clopperPearson(k, n int, level float64) (lo, hi float64) {
	a := (1 - level) / 2
	lo, hi = 0, 1
	if k > 0 {
		lo = distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(a)
	}
	if k < n {
		hi = distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(1 - a)
	}
	return lo, hi
}

func (o Options) fixed(name string) bool {
	_, ok := o.Fixed[name]
	return ok
}

// TestCoverageDesign checks binomialDesign against the binomial
// distribution directly: the design meets both error bounds, its threshold
// is the largest the significance allows, and no smaller number of data
// sets meets them.
func TestCoverageDesign(t *testing.T) {
	m := float64(coverageParams(coverageCases()))
	tests := []struct {
		name                      string
		nominal, bad, alpha, beta float64
	}{
		{"long", coverageNominal, longBad, longAlpha / m, longBeta},
		{"short", coverageNominal, shortBad, shortAlpha / m, shortBeta},
		{"one parameter, 95% against 80%", 0.95, 0.80, 0.05, 0.05},
	}
	// meets reports whether threshold k on n data sets keeps both errors
	// within bounds.
	meets := func(n, k int, nominal, bad, alpha, beta float64) bool {
		fail := distuv.Binomial{N: float64(n), P: nominal}.CDF(float64(k - 1))
		pass := 1 - distuv.Binomial{N: float64(n), P: bad}.CDF(float64(k-1))
		return fail <= alpha && pass <= beta
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := binomialDesign(tc.nominal, tc.bad, tc.alpha, tc.beta)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d data sets, at least %d hits: P(fail | %.2f) = %.3g, P(pass | %.2f) = %.3g", d.sets, d.minHits, tc.nominal, d.failCorrect, tc.bad, d.passBad)
			if !meets(d.sets, d.minHits, tc.nominal, tc.bad, tc.alpha, tc.beta) || d.failCorrect > tc.alpha || d.passBad > tc.beta {
				t.Errorf("design %+v misses its bounds", d)
			}
			if good := (distuv.Binomial{N: float64(d.sets), P: tc.nominal}); d.minHits < d.sets && good.CDF(float64(d.minHits)) <= tc.alpha {
				t.Errorf("threshold %d could be raised within α", d.minHits)
			}
			for k := 1; k <= d.sets-1; k++ {
				if meets(d.sets-1, k, tc.nominal, tc.bad, tc.alpha, tc.beta) {
					t.Errorf("%d data sets with threshold %d already meet the bounds", d.sets-1, k)
				}
			}
		})
	}
}
