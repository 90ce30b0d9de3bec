package scalingplot

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"asymptote.dev/asymptote/scaling"
)

func powerFit(t *testing.T, p []float64, seed uint64) *scaling.Fit {
	t.Helper()
	var xs []float64
	for i := range 12 {
		xs = append(xs, math.Pow(10, 3*float64(i)/11))
	}
	obs := scaling.PowerData(rand.New(rand.NewPCG(seed, 1)), p, xs, 0.005)
	f, err := scaling.FitLaw(context.Background(), scaling.Power, obs, scaling.Options{Loss: scaling.Loss{Kind: scaling.LeastSquares}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scaling.Bootstrap(context.Background(), f, scaling.BootstrapOptions{Resamples: 50, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPlots(t *testing.T) {
	a := powerFit(t, []float64{2, 10, 0.5}, 1)
	b := powerFit(t, []float64{2.5, 5, 0.5}, 2)
	r, err := scaling.Crossovers(a, b, scaling.CrossoverOptions{Lo: 1, Hi: 1e5, Noise: 0.004})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		file string
		draw func(string) error
	}{
		{"fit.png", func(p string) error { return Fit(p, a, Options{XLabel: "params"}) }},
		{"fit.svg", func(p string) error { return Fit(p, a, Options{}) }},
		{"crossover.png", func(p string) error { return Crossover(p, a, b, r, Options{Names: [2]string{"a", "b"}}) }},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if err := tc.draw(path); err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(path); err != nil || st.Size() < 2000 {
				t.Errorf("%s: %v", path, err)
			}
		})
	}
}
