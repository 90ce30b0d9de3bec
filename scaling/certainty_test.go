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
	var base, added []Obs
	for i := range 12 {
		base = append(base, Obs{X: math.Pow(10, 0.5+2*float64(i)/11)})
	}
	for range 6 {
		added = append(added, Obs{X: math.Pow(10, 3.5)})
	}
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
