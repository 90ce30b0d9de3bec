package scaling

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat"
)

// TestPredictWidthAgainstAdding checks the cost-of-certainty prediction
// against actually adding the runs: over many data sets from a known power
// law, the width PredictWidth expects for E after adding six runs beyond
// the data is compared with the real spread of E's estimate once those
// runs are drawn and the law refitted (2·1.96 times its standard deviation
// across data sets), and likewise before adding them.
func TestPredictWidthAgainstAdding(t *testing.T) {
	truth := []float64{2, 5, 0.4}
	base, added := addingDesign(12, 0.5, 2.5, 6, 3.5)
	const sets, sigma = 300, 0.01
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		loss Loss
		lo   float64 // the accepted ratio of predicted to actual width, lo to 1/lo
	}{
		{"least squares on log loss", Loss{Kind: HuberLog, Delta: 10}, 0.8},
		{"summed Huber (near L1)", Loss{Kind: HuberLog}, 0.75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var predNow, predAfter, estNow, estAfter []float64
			for s := range sets {
				rng := rand.New(rand.NewPCG(uint64(s), 8))
				draw := func(obs []Obs) []Obs {
					out := append([]Obs(nil), obs...)
					for i := range out {
						out[i].Loss = Power.Predict(truth, out[i]) * math.Exp(sigma*rng.NormFloat64())
					}
					return out
				}
				b := draw(base)
				f, err := FitLaw(ctx, Power, b, Options{Loss: tc.loss, RandomStarts: 20, Seed: uint64(s)})
				if err != nil {
					t.Fatal(err)
				}
				q, _ := ParamQuantity(f, "E")
				now, after, err := PredictWidth(f, q, added, 0.95)
				if err != nil {
					t.Fatal(err)
				}
				g, err := FitLaw(ctx, Power, append(b, draw(added)...), Options{Loss: tc.loss, RandomStarts: 20, Seed: uint64(s)})
				if err != nil {
					t.Fatal(err)
				}
				predNow, predAfter = append(predNow, now), append(predAfter, after)
				estNow, estAfter = append(estNow, f.Params[0]), append(estAfter, g.Params[0])
			}
			z := 2 * 1.96
			realNow, realAfter := z*stat.StdDev(estNow, nil), z*stat.StdDev(estAfter, nil)
			pn, pa := stat.Mean(predNow, nil), stat.Mean(predAfter, nil)
			t.Logf("E's width: predicted %.4f now, %.4f after adding the runs; actual %.4f and %.4f (ratios %.2f, %.2f)",
				pn, pa, realNow, realAfter, pn/realNow, pa/realAfter)
			for _, r := range []float64{pn / realNow, pa / realAfter} {
				if r < tc.lo || r > 1/tc.lo {
					t.Errorf("predicted/actual width %.3f outside [%.2f, %.2f]", r, tc.lo, 1/tc.lo)
				}
			}
			if !(pa < pn && realAfter < realNow) {
				t.Errorf("adding runs did not narrow the interval: predicted %g → %g, actual %g → %g", pn, pa, realNow, realAfter)
			}
		})
	}
}

func TestCostOfCertainty(t *testing.T) {
	truth := []float64{2, 5, 0.4}
	var xs []float64
	for i := range 12 {
		xs = append(xs, math.Pow(10, 0.5+2*float64(i)/11))
	}
	obs := PowerData(rand.New(rand.NewPCG(4, 4)), truth, xs, 0.01)
	f, err := FitLaw(context.Background(), Power, obs, Options{Loss: Loss{Kind: HuberLog, Delta: 10}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParamQuantity(f, "E")
	if err != nil {
		t.Fatal(err)
	}
	cands := []Obs{{X: 10}, {X: 1e3}, {X: 1e4}}
	now, _, err := PredictWidth(f, q, nil, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := CostOfCertainty(f, q, CostOptions{Candidates: cands, Target: now / 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("width %.4f → %.4f with %d runs costing %g: %v", plan.Width, plan.Widths[len(plan.Widths)-1], len(plan.Added), plan.Cost, plan.Added)
	if !plan.Reached || plan.Widths[len(plan.Widths)-1] > now/2 {
		t.Fatalf("target %g not reached: %+v", now/2, plan)
	}
	for i := 1; i < len(plan.Widths); i++ {
		if plan.Widths[i] > plan.Widths[i-1] {
			t.Errorf("width grew from %g to %g at run %d", plan.Widths[i-1], plan.Widths[i], i)
		}
	}
	_, after, err := PredictWidth(f, q, plan.Added, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	if last := plan.Widths[len(plan.Widths)-1]; math.Abs(after-last) > 1e-9*last {
		t.Errorf("the plan's last width %g, PredictWidth of its runs %g", last, after)
	}
	var sum float64
	for _, o := range plan.Added {
		sum += o.X
	}
	if math.Abs(sum-plan.Cost) > 1e-9*sum {
		t.Errorf("cost %g, the runs' scales sum to %g", plan.Cost, sum)
	}
	for _, tc := range []struct {
		name string
		o    CostOptions
		want string
	}{
		{"no candidates", CostOptions{Target: 1}, "no candidate"},
		{"no target", CostOptions{Candidates: cands}, "target width"},
		{"free run", CostOptions{Candidates: cands, Target: 1, Cost: func(Obs) float64 { return 0 }}, "costs must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := CostOfCertainty(f, q, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := ParamQuantity(f, "B"); err == nil {
		t.Error("a parameter the law lacks gave no error")
	}
}

// TestMultiplierWidthAgainstAdding checks the multiplier's predicted width
// against actually adding runs: two power laws with L_B(x) = L_A(2x), 12
// runs each over 10^0.5–10^2.5; the predicted width of m(300) (beyond the
// data) after adding four runs at 10^3.5 to each recipe, against
// 2·1.96 times the spread of the estimated m(300) across data sets once
// those runs are drawn and both laws refitted.
func TestMultiplierWidthAgainstAdding(t *testing.T) {
	truthA := []float64{2, 5, 0.4}
	truthB := []float64{2, 5 * math.Pow(2, -0.4), 0.4}
	var base, added []Obs
	for i := range 12 {
		base = append(base, Obs{X: math.Pow(10, 0.5+2*float64(i)/11)})
	}
	for range 4 {
		added = append(added, Obs{X: math.Pow(10, 3.5)})
	}
	const sets, sigma, x = 300, 0.01, 300
	ctx := context.Background()
	loss := Options{Loss: Loss{Kind: HuberLog, Delta: 10}, RandomStarts: 20}
	var predNow, predAfter, mNow, mAfter []float64
	for s := range sets {
		rng := rand.New(rand.NewPCG(uint64(s), 9))
		draw := func(truth []float64, obs []Obs) []Obs {
			out := append([]Obs(nil), obs...)
			for i := range out {
				out[i].Loss = Power.Predict(truth, out[i]) * math.Exp(sigma*rng.NormFloat64())
			}
			return out
		}
		ba, bb := draw(truthA, base), draw(truthB, base)
		fit := func(obs []Obs) *Fit {
			f, err := FitLaw(ctx, Power, obs, loss)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		fa, fb := fit(ba), fit(bb)
		now, after, err := PredictMultiplierWidth(fa, fb, x, added, added, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		ga, gb := fit(append(ba, draw(truthA, added)...)), fit(append(bb, draw(truthB, added)...))
		m0, _ := multiplierAt(Power, fa.Params, fb.Params, x)
		m1, _ := multiplierAt(Power, ga.Params, gb.Params, x)
		predNow, predAfter, mNow, mAfter = append(predNow, now), append(predAfter, after), append(mNow, m0), append(mAfter, m1)
	}
	z := 2 * 1.96
	realNow, realAfter := z*stat.StdDev(mNow, nil), z*stat.StdDev(mAfter, nil)
	pn, pa := stat.Mean(predNow, nil), stat.Mean(predAfter, nil)
	t.Logf("m(%g)'s width: predicted %.4f now, %.4f after; actual %.4f and %.4f (ratios %.2f, %.2f)", float64(x), pn, pa, realNow, realAfter, pn/realNow, pa/realAfter)
	for _, r := range []float64{pn / realNow, pa / realAfter} {
		if r < 0.8 || r > 1.25 {
			t.Errorf("predicted/actual width %.3f outside [0.8, 1.25]", r)
		}
	}
	fa, fb := multiplierData(t, 1, 2, 10)
	plan, err := MultiplierCost(fa, fb, 100, CostOptions{Candidates: []Obs{{X: 1e3}, {X: 1e4}}, Target: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Recipes) != len(plan.Added) || !plan.Reached || plan.Widths[len(plan.Widths)-1] > 0.3 {
		t.Errorf("plan to width 0.3: %+v", plan)
	}
	addA, addB := plan.ByRecipe()
	if _, after, err := PredictMultiplierWidth(fa, fb, 100, addA, addB, 0.95); err != nil || math.Abs(after-plan.Widths[len(plan.Widths)-1]) > 1e-9*after {
		t.Errorf("the plan's last width %g, PredictMultiplierWidth of its runs %g (%v)", plan.Widths[len(plan.Widths)-1], after, err)
	}
	t.Logf("m(100) width %.4f → %.4f with %d runs (%d to the first recipe), cost %g", plan.Width, plan.Widths[len(plan.Widths)-1], len(plan.Added), len(addA), plan.Cost)
}

// addingDesign returns n runs log-spaced over 10^lo–10^hi and k runs at
// 10^at, the design the tests of predicted widths add to.
func addingDesign(n int, lo, hi float64, k int, at float64) (base, added []Obs) {
	for i := range n {
		base = append(base, Obs{X: math.Pow(10, lo+(hi-lo)*float64(i)/float64(n-1))})
	}
	for range k {
		added = append(added, Obs{X: math.Pow(10, at)})
	}
	return base, added
}

// TestCrossingRatioAgainstAdding checks the crossing's cost of certainty
// against adding the runs: two power laws crossing once at x* = 20^2.5 ≈
// 1789 (L_A = 2 + 5x^−0.4, L_B = 2.1 + 3x^−0.4), 12 runs each over
// 10^0.5–10^3, log-noise 0.005, 200 data sets; the predicted width of log
// x*'s interval (the log of the ratio hi/lo) now and after four runs at
// 10^3.5 to each recipe, against 2·1.96 times the standard deviation of
// log x* across the data sets before and after those runs are drawn and
// the laws refitted. Then the cheapest plan to a ratio reaches it, and
// PredictCrossingRatio of the plan's runs gives the plan's last ratio.
func TestCrossingRatioAgainstAdding(t *testing.T) {
	truthA, truthB := []float64{2, 5, 0.4}, []float64{2.1, 3, 0.4}
	base, added := addingDesign(12, 0.5, 3, 4, 3.5)
	const sets, sigma = 200, 0.005
	ctx := context.Background()
	opts := Options{Loss: Loss{Kind: LeastSquares}}
	draw := func(rng *rand.Rand, truth []float64, obs []Obs) []Obs {
		out := append([]Obs(nil), obs...)
		for i := range out {
			out[i].Loss = Power.Predict(truth, out[i]) * math.Exp(sigma*rng.NormFloat64())
		}
		return out
	}
	fit := func(obs []Obs) *Fit {
		f, err := FitLaw(ctx, Power, obs, opts)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	root := func(fa, fb *Fit) float64 {
		r := Roots(CurveOf(Power, fa.Params), CurveOf(Power, fb.Params), 1, 1e8)
		if len(r) != 1 {
			return math.NaN()
		}
		return math.Log(r[0])
	}
	var predNow, predAfter, xNow, xAfter []float64
	for s := range sets {
		rng := rand.New(rand.NewPCG(uint64(s), 11))
		ba, bb := draw(rng, truthA, base), draw(rng, truthB, base)
		fa, fb := fit(ba), fit(bb)
		x0 := root(fa, fb)
		if math.IsNaN(x0) {
			t.Fatalf("data set %d: the fitted curves do not cross once", s)
		}
		now, after, err := PredictCrossingRatio(fa, fb, math.Exp(x0), added, added, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		x1 := root(fit(append(ba, draw(rng, truthA, added)...)), fit(append(bb, draw(rng, truthB, added)...)))
		if math.IsNaN(x1) {
			t.Fatalf("data set %d: with the added runs the curves do not cross once", s)
		}
		predNow, predAfter = append(predNow, math.Log(now)), append(predAfter, math.Log(after))
		xNow, xAfter = append(xNow, x0), append(xAfter, x1)
	}
	z := 2 * 1.96
	realNow, realAfter := z*stat.StdDev(xNow, nil), z*stat.StdDev(xAfter, nil)
	pn, pa := stat.Mean(predNow, nil), stat.Mean(predAfter, nil)
	t.Logf("crossing's interval ratio hi/lo: predicted %.3f now, %.3f after; actual %.3f and %.3f (log-width ratios %.2f, %.2f)",
		math.Exp(pn), math.Exp(pa), math.Exp(realNow), math.Exp(realAfter), pn/realNow, pa/realAfter)
	for _, r := range []float64{pn / realNow, pa / realAfter} {
		if r < 0.8 || r > 1.25 {
			t.Errorf("predicted/actual log width %.3f outside [0.8, 1.25]", r)
		}
	}

	rng := rand.New(rand.NewPCG(1, 11))
	fa, fb := fit(draw(rng, truthA, base)), fit(draw(rng, truthB, base))
	x0 := math.Exp(root(fa, fb))
	cands := []Obs{{X: 300}, {X: 3000}, {X: 30000}}
	if _, err := CrossingCost(fa, fb, x0, CostOptions{Candidates: cands, Target: 1}); err == nil {
		t.Error("a target ratio of 1 was accepted")
	}
	plan, err := CrossingCost(fa, fb, x0, CostOptions{Candidates: cands, Target: 1.5})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Reached || len(plan.Added) == 0 || plan.Widths[len(plan.Widths)-1] > 1.5 || plan.Width <= 1.5 {
		t.Fatalf("plan to ratio 1.5 from %g: reached %v with %d runs, last ratio %v", plan.Width, plan.Reached, len(plan.Added), plan.Widths)
	}
	addA, addB := plan.ByRecipe()
	if _, after, err := PredictCrossingRatio(fa, fb, x0, addA, addB, 0.95); err != nil || math.Abs(after-plan.Widths[len(plan.Widths)-1]) > 1e-9*after {
		t.Errorf("the plan's last ratio %g, PredictCrossingRatio of its runs %g (%v)", plan.Widths[len(plan.Widths)-1], after, err)
	}
	t.Logf("crossing at %.4g: ratio %.3f → %.3f with %d runs (%d to the first recipe), cost %g", x0, plan.Width, plan.Widths[len(plan.Widths)-1], len(plan.Added), len(addA), plan.Cost)
}
