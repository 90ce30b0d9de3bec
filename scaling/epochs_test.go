package scaling

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

func TestEpochAnalysisSeeds(t *testing.T) {
	obs := readDatablations(t, "datablations_c4_val_losses_with_seeds.csv")
	r, err := EpochAnalysis(obs, EpochOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The README: 16 four-seed configurations, median σ about 0.004; the
	// file groups each with its unseeded original run (5 runs), which gives
	// a median of 0.006.
	if r.Sigma < 0.003 || r.Sigma > 0.007 {
		t.Errorf("σ_seed = %.4f (%s), want about 0.004", r.Sigma, r.SigmaSource)
	}
	t.Logf("σ_seed %.4f from %s; %d series", r.Sigma, r.SigmaSource, len(r.Series))
}

func TestEpochDegradation(t *testing.T) {
	// A series that improves to 16 epochs, is flat within noise at 32, and
	// degrades beyond noise at 64.
	mk := func(ep, loss float64) Obs { return Obs{N: 3e8, U: 1e9, D: 1e9 * ep, Loss: loss} }
	obs := []Obs{mk(1, 3.5), mk(2, 3.3), mk(4, 3.2), mk(8, 3.15), mk(16, 3.14), mk(32, 3.145), mk(64, 3.2)}
	r, err := EpochAnalysis(obs, EpochOptions{NoiseFloor: 0.004})
	if err != nil {
		t.Fatal(err)
	}
	s := r.Series[0]
	if s.Best != 16 || s.Degrades != 64 {
		t.Errorf("best at %g epochs, degrades at %g; want 16 and 64", s.Best, s.Degrades)
	}
}

func TestNestedAsymptote(t *testing.T) {
	// L(N, K) = E_N + 0.2·K^−0.8 with E_N = 3.2 + 0.05·(N/1e9)^−1.
	rng := rand.New(rand.NewPCG(3, 4))
	var obs []Obs
	for _, n := range []float64{1.5e8, 3e8, 6e8, 1.4e9} {
		en := 3.2 + 0.05*math.Pow(n/1e9, -1)
		for k := 1; k <= 8; k++ {
			l := en + 0.2*math.Pow(float64(k), -0.8)
			obs = append(obs, Obs{N: n, X: float64(k), Loss: l * math.Exp(0.001*rng.NormFloat64())})
		}
	}
	nest, err := NestedAsymptote(context.Background(), obs, Options{Loss: Loss{Kind: LeastSquares}}, BootstrapOptions{Resamples: 100, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("asymptote %.4f (%.4f, %.4f); warnings %q", nest.Asymptote, nest.Interval.Lo, nest.Interval.Hi, nest.Outer.Warnings)
	if math.Abs(nest.Asymptote-3.2) > 0.03 {
		t.Errorf("nested asymptote %.4f, want 3.2", nest.Asymptote)
	}
	if !(nest.Interval.Lo <= nest.Asymptote && nest.Asymptote <= nest.Interval.Hi) {
		t.Errorf("interval (%g, %g) does not hold the estimate %g", nest.Interval.Lo, nest.Interval.Hi, nest.Asymptote)
	}
	if !hasWarning(nest.Outer, "1 residual degree of freedom") {
		t.Errorf("4 sizes for 3 parameters should warn: %q", nest.Outer.Warnings)
	}
}
