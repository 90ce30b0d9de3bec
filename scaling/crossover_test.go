package scaling

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

func TestRoots(t *testing.T) {
	pw := func(e, a, al float64) Curve {
		return func(x float64) float64 { return e + a*math.Pow(x, -al) }
	}
	tests := []struct {
		name   string
		c1, c2 Curve
		want   []float64
	}{
		{"parallel", pw(2, 5, 0.3), pw(2.1, 5, 0.3), nil},
		// 2 + 10x^-0.5 = 2.5 + 5x^-0.5 ⇔ x^-0.5 = 0.1 ⇔ x = 100.
		{"one", pw(2, 10, 0.5), pw(2.5, 5, 0.5), []float64{100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Roots(tc.c1, tc.c2, 1, 1e6)
			if len(got) != len(tc.want) {
				t.Fatalf("roots %v, want %v", got, tc.want)
			}
			for i := range got {
				if math.Abs(got[i]/tc.want[i]-1) > 1e-9 {
					t.Errorf("root %g, want %g", got[i], tc.want[i])
				}
			}
		})
	}
	// Two crossings: the Epoch-MLE frontier against Hoffmann's, at
	// 10^19.32 and 10^20.16 FLOP in the reference notes (computed from
	// unrounded parameters; the curves nearly coincide there, so the
	// 4-digit published values move the roots by about 0.1 decade).
	epoch := FrontierOf([]float64{1.8169, 482.01, 2085.43, 0.3478, 0.3658})
	hoff := FrontierOf([]float64{math.Exp(0.5267228), math.Exp(6.0073404), math.Exp(6.0179186), 0.33917084, 0.2849083})
	got := Roots(epoch.Loss, hoff.Loss, 1e17, 1e26)
	if len(got) != 2 || math.Abs(math.Log10(got[0])-19.32) > 0.15 || math.Abs(math.Log10(got[1])-20.16) > 0.15 {
		t.Errorf("frontier crossings at 10^%v, want 10^19.32 and 10^20.16", log10s(got))
	}
}

func log10s(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Round(math.Log10(x)*100) / 100
	}
	return out
}

// TestCrossoverRecovery draws two recipes whose true curves cross once
// inside the observed range and checks that the root is recovered within
// its paired-bootstrap interval in most data sets.
func TestCrossoverRecovery(t *testing.T) {
	p1 := []float64{2.0, 10, 0.5}
	p2 := []float64{2.5, 5, 0.5} // crosses p1 at x = 100
	var xs []float64
	for i := range 16 {
		xs = append(xs, math.Pow(10, 3*float64(i)/15))
	}
	seeds := 20
	if testing.Short() {
		seeds = 5
	}
	hits, one := 0, 0
	for s := range seeds {
		rng := rand.New(rand.NewPCG(uint64(s), 5))
		var fits [2]*Fit
		for k, p := range [][]float64{p1, p2} {
			f, err := FitLaw(context.Background(), Power, PowerData(rng, p, xs, 0.005), Options{Loss: Loss{Kind: LeastSquares}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Bootstrap(context.Background(), f, BootstrapOptions{Resamples: 200, Seed: uint64(s*2 + k)}); err != nil {
				t.Fatal(err)
			}
			fits[k] = f
		}
		r, err := Crossovers(fits[0], fits[1], CrossoverOptions{Lo: 1, Hi: 1e6, Noise: 0.004, Target: 1e5})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Roots) == 1 {
			one++
			if r.Roots[0].Interval.Contains(100) {
				hits++
			}
			if r.Roots[0].Extrapolated {
				t.Errorf("seed %d: root %g flagged as extrapolated inside [1, 1000]", s, r.Roots[0].X)
			}
		}
		if r.PFirstBelow < 0.9 {
			t.Errorf("seed %d: P(L1 < L2 at 1e5) = %.2f, want ≈ 1", s, r.PFirstBelow)
		}
	}
	t.Logf("one root found in %d of %d data sets; its interval held the truth in %d", one, seeds, hits)
	if float64(hits) < 0.75*float64(seeds) {
		t.Errorf("root recovered within its interval in %d of %d data sets", hits, seeds)
	}
}
