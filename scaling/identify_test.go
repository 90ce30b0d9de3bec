package scaling

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestResidualDegreesOfFreedom checks the residual degrees of freedom,
// n − p with p the free parameters of the curve, and what the package does
// when they run out. With as many points as curve parameters the law
// passes through every point, so each bootstrap refit would land on the
// exact fit and report an interval of zero width: the fit must instead say
// that the parameters are not identified and carry no interval.
func TestResidualDegreesOfFreedom(t *testing.T) {
	// noisy draws the inputs of n points for law and their losses from
	// truth with 1% log-normal noise, so no fit is exact by construction.
	noisy := func(law Law, truth []float64, n int) []Obs {
		rng := rand.New(rand.NewPCG(uint64(n), 17))
		var obs []Obs
		for i := range n {
			s := math.Pow(10, 1+3*float64(i)/float64(n))
			o := Obs{X: s, N: 1e7 * s, D: 2e8 * s * (1 + 0.5*float64(i%2))}
			o.Loss = law.Predict(truth, o) * math.Exp(0.01*rng.NormFloat64())
			obs = append(obs, o)
		}
		return obs
	}
	power := []float64{2, 5, 0.4}
	chin := []float64{1.8, 480, 2100, 0.34, 0.37}
	ls := Loss{Kind: LeastSquares}
	tests := []struct {
		name   string
		law    Law
		truth  []float64
		points int
		opts   Options
		dof    int
	}{
		{"power, least squares, 3 points", Power, power, 3, Options{Loss: ls}, 0},
		{"power, summed Huber, 3 points", Power, power, 3, Options{}, 0},
		{"power, least squares, 4 points", Power, power, 4, Options{Loss: ls}, 1},
		// log σ describes the noise, not the curve: 4 points for 3 curve
		// parameters leave one residual degree of freedom, as for the
		// other losses.
		{"power, Huber likelihood, 4 points", Power, power, 4, Options{Loss: Loss{Kind: HuberLikelihood}, RandomStarts: 20}, 1},
		{"power, E fixed, 2 points", Power, power, 2, Options{Loss: ls, Fixed: map[string]float64{"E": 2}}, 0},
		// Tied exponents are one parameter: E, A, B and alpha = beta.
		{"chinchilla, tied exponents, 4 points", Chinchilla, chin, 4, Options{TieExponents: true, RandomStarts: 20}, 0},
		{"chinchilla, 12 points", Chinchilla, chin, 12, Options{RandomStarts: 20}, 7},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := noisy(tc.law, tc.truth, tc.points)
			f, err := FitLaw(ctx, tc.law, obs, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if f.Goodness.DoF != tc.dof {
				t.Errorf("DoF = %d, want %d (%d points)", f.Goodness.DoF, tc.dof, tc.points)
			}
			// The warning and Goodness.DoF must state the same number.
			for _, w := range f.Warnings {
				if strings.Contains(w, "residual degree") && !strings.Contains(w, fmt.Sprintf("%d residual degree", f.Goodness.DoF)) &&
					!(f.Goodness.DoF == 0 && strings.Contains(w, "no residual degrees of freedom")) {
					t.Errorf("warning %q disagrees with DoF %d", w, f.Goodness.DoF)
				}
			}
			b, err := Bootstrap(ctx, f, BootstrapOptions{Resamples: 40, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if b.NotIdentified != (tc.dof == 0) || f.Identified() != (tc.dof > 0) {
				t.Errorf("NotIdentified %v, Identified() %v with %d residual degrees of freedom", b.NotIdentified, f.Identified(), tc.dof)
			}
			if tc.dof > 0 {
				for j, name := range f.Names {
					iv := b.Intervals[j]
					if !f.Fixed[j] && !(iv.Hi > iv.Lo) {
						t.Errorf("%s: interval (%g, %g) with %d residual degrees of freedom", name, iv.Lo, iv.Hi, tc.dof)
					}
				}
				if hasWarning(f, "no interval") {
					t.Errorf("identified fit warns that no interval can be given: %q", f.Warnings)
				}
				return
			}
			want := fmt.Sprintf("%d points for %d free parameters", tc.points, tc.points)
			var found bool
			for _, w := range f.Warnings {
				if strings.Contains(w, want) {
					found = true
					for _, say := range []string{"not identified", "no interval can be given"} {
						if !strings.Contains(w, say) {
							t.Errorf("warning %q does not say %q", w, say)
						}
					}
					if strings.Contains(w, "report intervals") {
						t.Errorf("warning %q asks for intervals that cannot be given", w)
					}
				}
			}
			if !found {
				t.Errorf("no warning naming %q: %q", want, f.Warnings)
			}
			for j, name := range f.Names {
				iv := b.Intervals[j]
				if f.Fixed[j] {
					if iv.Lo != f.Params[j] || iv.Hi != f.Params[j] {
						t.Errorf("fixed %s: interval (%g, %g), want its value %g", name, iv.Lo, iv.Hi, f.Params[j])
					}
					continue
				}
				if !math.IsNaN(iv.Lo) || !math.IsNaN(iv.Hi) || iv.Contains(f.Params[j]) {
					t.Errorf("%s: interval (%g, %g) given for a parameter that is not identified", name, iv.Lo, iv.Hi)
				}
				if !math.IsNaN(b.Median[j]) || !math.IsNaN(b.StdErr[j]) {
					t.Errorf("%s: median %g, standard error %g given for a parameter that is not identified", name, b.Median[j], b.StdErr[j])
				}
			}
			pr := f.PredictInterval(obs[0])
			if !math.IsNaN(pr.Mean.Lo) || !math.IsNaN(pr.Range.Hi) {
				t.Errorf("prediction intervals %+v from a fit that is not identified", pr)
			}
			if b.Failed != 0 {
				t.Errorf("%d refits counted as failed; none should have run", b.Failed)
			}
			if _, err := ChiSquare(f, map[string]float64{f.Names[len(f.Names)-1]: 0.3}); err == nil || !strings.Contains(err.Error(), "not identified") {
				t.Errorf("χ² test of a fit that is not identified: err = %v", err)
			}
		})
	}
}

// TestNotIdentifiedDownstream checks that the results built on bootstrap
// replicates give no interval when a fit they rest on is not identified.
func TestNotIdentifiedDownstream(t *testing.T) {
	ctx := context.Background()
	ls := Options{Loss: Loss{Kind: LeastSquares}}
	boot := BootstrapOptions{Resamples: 40, Seed: 1}
	t.Run("crossover", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 5))
		xs := []float64{10, 100, 1000, 10000}
		// Curves crossing near x = 300; the second fit has 3 points.
		f1, err := FitLaw(ctx, Power, PowerData(rng, []float64{2, 4, 0.3}, xs, 0.005), ls)
		if err != nil {
			t.Fatal(err)
		}
		f2, err := FitLaw(ctx, Power, PowerData(rng, []float64{1.8, 8, 0.3}, xs[:3], 0.005), ls)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []*Fit{f1, f2} {
			if _, err := Bootstrap(ctx, f, boot); err != nil {
				t.Fatal(err)
			}
		}
		r, err := Crossovers(f1, f2, CrossoverOptions{Lo: 1, Hi: 1e6})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Roots) == 0 {
			t.Fatal("no crossing to check")
		}
		for _, root := range r.Roots {
			if !math.IsNaN(root.Interval.Lo) || !math.IsNaN(root.Interval.Hi) {
				t.Errorf("root %g: interval %+v from a fit that is not identified", root.X, root.Interval)
			}
		}
		if r.Replicates != 0 {
			t.Errorf("%d paired replicates from a fit that is not identified", r.Replicates)
		}
	})
	t.Run("nested asymptote", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		var obs []Obs
		for i, n := range []float64{1.5e8, 3e8, 6e8, 1.4e9} {
			en := 3.2 + 0.05*math.Pow(n/1e9, -1)
			members := 8
			if i == 1 {
				members = 3 // as many as the inner law's parameters
			}
			for k := 1; k <= members; k++ {
				l := en + 0.2*math.Pow(float64(k), -0.8)
				obs = append(obs, Obs{N: n, X: float64(k), Loss: l * math.Exp(0.001*rng.NormFloat64())})
			}
		}
		nest, err := NestedAsymptote(ctx, obs, ls, boot)
		if err != nil {
			t.Fatal(err)
		}
		if !math.IsNaN(nest.Interval.Lo) || !math.IsNaN(nest.Interval.Hi) {
			t.Errorf("nested interval %+v with an inner fit that is not identified", nest.Interval)
		}
		if !hasWarning(nest.Outer, "3e+08 is not identified") {
			t.Errorf("no warning names the size that is not identified: %q", nest.Outer.Warnings)
		}
	})
}

// TestIdentifyDirections checks the Fisher information's verdicts: on a
// Chinchilla design the least determined direction couples a coefficient
// with its exponent (log A and alpha, or log B and beta: log L̂ depends on
// them through a − alpha·log N, and log N is about 20 here), and on a power
// law over three decades with 0.1 % noise every direction is pinned down.
func TestIdentifyDirections(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var obs []Obs
	truth := []float64{1.8, 480, 2100, 0.34, 0.37}
	for i := range 5 {
		n := math.Pow(10, 8+0.4*float64(i))
		for j := range 5 {
			o := Obs{N: n, D: n * math.Pow(10, 0.5+0.4*float64(j))}
			o.Loss = Chinchilla.Predict(truth, o) * math.Exp(0.01*rng.NormFloat64())
			obs = append(obs, o)
		}
	}
	f, err := FitLaw(ctx, Chinchilla, obs, Options{RandomStarts: 40})
	if err != nil {
		t.Fatal(err)
	}
	id, err := Identify(ctx, f, IdentifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	weak := id.Directions[0]
	t.Logf("condition %.3g; weakest: %s", id.Condition, weak.Words)
	coupled := func(a, b string) bool {
		ia, ib := indexOf(id.Names, a), indexOf(id.Names, b)
		return math.Abs(weak.Vector[ia]) > 0.01 && math.Abs(weak.Vector[ib]) > 0.5
	}
	if !coupled("alpha", "log A") && !coupled("beta", "log B") {
		t.Errorf("weakest direction %v over %v couples neither log A with alpha nor log B with beta", weak.Vector, id.Names)
	}
	if weak.Pinned || !strings.Contains(weak.Words, "cannot tell apart") {
		t.Errorf("weakest direction pinned %v: %q", weak.Pinned, weak.Words)
	}
	if !(id.Condition > 1e6) {
		t.Errorf("condition number %g, want the near-collinearity to show (> 1e6)", id.Condition)
	}

	var xs []float64
	for i := range 24 {
		xs = append(xs, math.Pow(10, 3*float64(i)/23))
	}
	pw := PowerData(rng, []float64{2, 5, 0.4}, xs, 0.001)
	g, err := FitLaw(ctx, Power, pw, Options{Loss: Loss{Kind: LeastSquares}})
	if err != nil {
		t.Fatal(err)
	}
	gid, err := Identify(ctx, g, IdentifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range gid.Directions {
		if !d.Pinned {
			t.Errorf("power law over three decades: %s", d.Words)
		}
	}
}

// TestIdentifyAllFixed checks that a fit with nothing free is refused
// rather than given an empty information matrix.
func TestIdentifyAllFixed(t *testing.T) {
	obs := PowerData(rand.New(rand.NewPCG(1, 1)), []float64{2, 5, 0.4}, []float64{1, 10, 100, 1000}, 0.01)
	f, err := FitLaw(context.Background(), Power, obs, Options{Fixed: map[string]float64{"E": 2, "A": 5, "alpha": 0.4}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Identify(context.Background(), f, IdentifyOptions{}); err == nil || !strings.Contains(err.Error(), "every parameter is fixed") {
		t.Errorf("Identify = %v, want an error saying every parameter is fixed", err)
	}
}

// TestIdentifyInfluence checks the drop-one sensitivity: a corrupted point
// is the one whose removal moves the parameters most, and a change of
// loss moves the fit.
func TestIdentifyInfluence(t *testing.T) {
	ctx := context.Background()
	var xs []float64
	for i := range 12 {
		xs = append(xs, math.Pow(10, 3*float64(i)/11))
	}
	obs := PowerData(rand.New(rand.NewPCG(3, 3)), []float64{2, 5, 0.4}, xs, 0.002)
	obs[10].Loss *= 1.03
	f, err := FitLaw(ctx, Power, obs, Options{Loss: Loss{Kind: LeastSquares}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := Identify(ctx, f, IdentifyOptions{Sensitivity: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range id.Influence {
		if in.Row != 10 {
			t.Errorf("%s moves most without row %d (by %.3g), want row 10, the corrupted one", in.Name, in.Row, in.Change)
		}
	}
	if len(id.Losses) != 5 {
		t.Fatalf("%d loss variants, want 5", len(id.Losses))
	}
	if ls := id.Losses[4]; ls.Loss != "ls" || math.Abs(ls.Params[0]-f.Params[0]) > 1e-6 {
		t.Errorf("least squares from the least-squares optimum moved E: %v vs %v", ls.Params, f.Params)
	}
	if h := id.Losses[1]; math.Abs(h.Params[0]-f.Params[0]) < 1e-6 {
		t.Errorf("the near-L1 Huber fit left E at the least-squares value %g despite the corrupted point", h.Params[0])
	}
}

// TestProfileCoverage checks that the profile intervals hold the truth at
// the nominal rate for a fit by the summed Huber loss, with the coverage
// study's binomial design (SCALING_LONG=1 for the long run).
func TestProfileCoverage(t *testing.T) {
	truth := []float64{2.0, 5.0, 0.4}
	d, _, err := coveragePlan(3)
	if err != nil {
		t.Fatal(err)
	}
	var xs []float64
	for i := range 24 {
		xs = append(xs, math.Pow(10, 0.5+3*float64(i)/23))
	}
	st := coverageStudy{names: Power.Params(), pos: Power.positive(), truth: truth,
		est: make([][]float64, 3), ivs: make([][]Interval, 3)}
	ctx := context.Background()
	for s := range d.sets {
		rng := rand.New(rand.NewPCG(uint64(s), 55))
		obs := PowerData(rng, truth, xs, 0.01)
		f, err := FitLaw(ctx, Power, obs, Options{Seed: uint64(s)})
		if err != nil {
			t.Fatal(err)
		}
		id, err := Identify(ctx, f, IdentifyOptions{Profile: true})
		if err != nil {
			t.Fatal(err)
		}
		for j, p := range id.Profile {
			st.est[j] = append(st.est[j], f.Params[j])
			st.ivs[j] = append(st.ivs[j], p.Interval)
		}
	}
	var report string
	for _, r := range st.assess(d) {
		report += fmt.Sprintf(" %s %.3f (%.3f–%.3f, width ×%.2f)", r.name, float64(r.hits)/float64(r.sets), r.lo, r.hi, r.widthRatio)
		for _, msg := range r.failures {
			t.Errorf("%s: %s", r.name, msg)
		}
	}
	t.Logf("%d data sets, threshold %d; profile coverage:%s", d.sets, d.minHits, report)
}
