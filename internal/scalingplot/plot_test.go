package scalingplot

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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

// TestAsymptoteLabel: a fit with as many points as parameters is not
// identified; its label said "95% CI NaN–NaN".
func TestAsymptoteLabel(t *testing.T) {
	f := powerFit(t, []float64{1.7, 400, 0.3}, 1)
	if got := asymptoteLabel(f, ""); !strings.Contains(got, "% CI ") || strings.Contains(got, "NaN") {
		t.Errorf("identified fit: %q, want an interval", got)
	}
	obs := scaling.PowerData(rand.New(rand.NewPCG(2, 1)), []float64{1.7, 400, 0.3}, []float64{1e3, 1e5, 1e7}, 0.005)
	g, err := scaling.FitLaw(context.Background(), scaling.Power, obs, scaling.Options{Loss: scaling.Loss{Kind: scaling.LeastSquares}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scaling.Bootstrap(context.Background(), g, scaling.BootstrapOptions{Resamples: 50, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	if got := asymptoteLabel(g, "A: "); got != fmt.Sprintf("A: asymptote E = %.4g (not identified: no interval)", g.Params[0]) {
		t.Errorf("three points, three parameters: %q", got)
	}
}
