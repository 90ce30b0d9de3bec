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
	iso := isoFit(t)
	dir := t.TempDir()
	tests := []struct {
		file string
		draw func(string) error
	}{
		{"fit.png", func(p string) error { return Fit(p, a, Options{XLabel: "params"}) }},
		{"fit.svg", func(p string) error { return Fit(p, a, Options{}) }},
		{"crossover.png", func(p string) error { return Crossover(p, a, b, r, Options{Names: [2]string{"a", "b"}}) }},
		{"isoflop.png", func(p string) error { return IsoFLOP(p, iso, Options{}) }},
		{"envelope.svg", func(p string) error { return Envelope(p, envelopeFit(t), Options{}) }},
		{"multiplier.png", func(p string) error { return Multiplier(p, a, b, 1.1, Options{Names: [2]string{"a", "b"}}) }},
		{"multiplier.svg", func(p string) error { return Multiplier(p, b, a, 0, Options{}) }},
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

// isoFit is an IsoFLOP analysis of four budgets of a Chinchilla law, one
// of them refused (its sizes all lie above the optimum).
func isoFit(t *testing.T) *scaling.IsoFLOP {
	t.Helper()
	truth := []float64{1.69, 406.4, 410.7, 0.34, 0.28}
	fr := scaling.FrontierOf(truth)
	var obs []scaling.Obs
	for k, c := range []float64{1e18, 1e19, 1e20, 1e21} {
		n0 := fr.At(c).N
		if k == 3 {
			n0 *= 8
		}
		for i := range 5 {
			n := n0 * math.Pow(10, float64(i-2)/4)
			o := scaling.Obs{N: n, D: c / (6 * n)}
			o.Loss = scaling.Chinchilla.Predict(truth, o)
			obs = append(obs, o)
		}
	}
	r, err := scaling.IsoFLOPFit(context.Background(), obs, scaling.IsoFLOPOptions{Resamples: 20, Noise: &scaling.Noise{Pooled: 0.003}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Used != 3 {
		t.Fatalf("%d budgets used, want 3", r.Used)
	}
	return r
}

// TestMultiplierNothingToDraw checks that a second recipe that never
// reaches the first's loss is an error, not an empty plot.
func TestMultiplierNothingToDraw(t *testing.T) {
	a := powerFit(t, []float64{2, 10, 0.5}, 1)
	b := powerFit(t, []float64{25, 10, 0.5}, 2) // above every loss of a
	err := Multiplier(filepath.Join(t.TempDir(), "m.png"), a, b, 0, Options{})
	if err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("Multiplier = %v, want an error saying the second recipe reaches the first's loss nowhere", err)
	}
}

// envelopeFit is Approach 1 on six sizes' curves of a Chinchilla law.
func envelopeFit(t *testing.T) *scaling.Envelope {
	t.Helper()
	p := []float64{1.69, 406.4, 410.7, 0.34, 0.28}
	var curves []scaling.TrainingCurve
	for k := range 6 {
		n := 3e7 * math.Pow(4, float64(k))
		c := scaling.TrainingCurve{Label: fmt.Sprint(k), N: n}
		for j := range 30 {
			d := 1e8 * math.Pow(3000, float64(j)/29)
			c.C = append(c.C, 6*n*d)
			c.Loss = append(c.Loss, scaling.Chinchilla.Predict(p, scaling.Obs{N: n, D: d}))
		}
		curves = append(curves, c)
	}
	r, err := scaling.EnvelopeFit(context.Background(), curves, scaling.EnvelopeOptions{Resamples: 20})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
