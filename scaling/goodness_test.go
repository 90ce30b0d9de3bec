package scaling

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestHuberLikelihood fits Besiroglu et al.'s Huber likelihood and checks
// its gradient in log σ, that σ lands at its tail optimum δ·mean|r|, and
// that a likelihood-ratio test of the fitted values against themselves
// finds nothing while Hoffmann's parameters are rejected.
func TestHuberLikelihood(t *testing.T) {
	obs := readSynthetic(t)
	ctx := context.Background()
	o := Options{Loss: Loss{Kind: HuberLikelihood}, Starts: [][]float64{hoffmann}}
	f, err := FitLaw(ctx, Chinchilla, obs, o)
	if err != nil {
		t.Fatal(err)
	}
	meanAbs := 0.0
	for _, r := range f.Residuals {
		meanAbs += math.Abs(r.LogResid)
	}
	meanAbs /= float64(len(f.Residuals))
	if s := math.Exp(f.LogSigma); math.Abs(s/(DefaultDelta*meanAbs)-1) > 0.01 {
		t.Errorf("σ = %.4g, want δ·mean|r| = %.4g", s, DefaultDelta*meanAbs)
	}
	// Gradient in log σ by central differences.
	ev := newEvaluator(Chinchilla.bind(obs), &f.lay, f.Loss, obs)
	z := f.freeVector()
	g := make([]float64, len(z))
	ev.fg(z, g)
	k := len(z) - 1
	h := 1e-6
	zp, zm := append([]float64(nil), z...), append([]float64(nil), z...)
	zp[k] += h
	zm[k] -= h
	if num := (ev.fg(zp, nil) - ev.fg(zm, nil)) / (2 * h); math.Abs(num-g[k]) > 1e-4*math.Max(1, math.Abs(num)) {
		t.Errorf("∂/∂log σ: analytic %g, numeric %g", g[k], num)
	}
	self := map[string]float64{}
	for j, n := range f.Names {
		self[n] = f.Params[j]
	}
	lr, err := LikelihoodRatio(f, self)
	if err != nil {
		t.Fatal(err)
	}
	if lr.Stat > 1e-3 || lr.DF != 5 {
		t.Errorf("LR of the fit against itself: %+v", lr)
	}
	h2 := map[string]float64{"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
	lr, err = LikelihoodRatio(f, h2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Hoffmann vs fit: %+v", lr)
	if lr.P > 1e-6 {
		t.Errorf("Hoffmann's parameters not rejected on data drawn from Besiroglu's: %+v", lr)
	}
}

func TestChiSquare(t *testing.T) {
	obs := readSynthetic(t)
	ctx := context.Background()
	f, err := FitLaw(ctx, Chinchilla, obs, Options{Starts: [][]float64{hoffmann}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Bootstrap(ctx, f, BootstrapOptions{Resamples: 300, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	self := map[string]float64{}
	for j, n := range f.Names {
		self[n] = f.Params[j]
	}
	c, err := ChiSquare(f, self)
	if err != nil {
		t.Fatal(err)
	}
	if c.Stat > 1e-9 || c.P < 0.999 || c.DF != 5 {
		t.Errorf("fit against itself: %+v", c)
	}
	c, err = ChiSquare(f, map[string]float64{"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Hoffmann: %+v", c)
	if c.P > 1e-6 {
		t.Errorf("Hoffmann's parameters not rejected: %+v", c)
	}
}

func TestGoodnessPerfectFit(t *testing.T) {
	var obs []Obs
	for i := range 10 {
		x := math.Pow(10, float64(i)/3)
		obs = append(obs, Obs{X: x, Loss: 2 + 3*math.Pow(x, -0.4)})
	}
	f, err := FitLaw(context.Background(), Power, obs, Options{Loss: Loss{Kind: LeastSquares}})
	if err != nil {
		t.Fatal(err)
	}
	g := f.Goodness
	// 10 points for the 3 parameters of the curve: 7 residual degrees of
	// freedom (the variance of the noise is not a parameter of the curve).
	if g.R2 < 1-1e-9 || g.RMSE > 1e-6 || g.MRE > 1e-4 || g.DoF != 7 {
		t.Errorf("perfect data: %+v", g)
	}
}

// TestBootstrapByRun resamples whole runs: with every run's checkpoints
// identical, a row bootstrap would understate the spread.
func TestBootstrapByRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	var obs []Obs
	for i := range 12 {
		x := math.Pow(10, float64(i)/4)
		l := (2 + 3*math.Pow(x, -0.4)) * math.Exp(0.02*rng.NormFloat64())
		for c := range 3 {
			obs = append(obs, Obs{X: x, Loss: l, Group: string(rune('a'+i)) + string(rune('0'+c/3))})
		}
	}
	f, err := FitLaw(context.Background(), Power, obs, Options{Loss: Loss{Kind: LeastSquares}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Bootstrap(context.Background(), f, BootstrapOptions{Resamples: 200, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !b.ByGroup {
		t.Fatal("groups ignored")
	}
	for _, s := range b.Samples {
		if s == nil {
			t.Fatal("failed refit")
		}
	}
}

func TestTooFewPoints(t *testing.T) {
	obs := []Obs{{N: 1e8, D: 1e9, Loss: 3}, {N: 2e8, D: 2e9, Loss: 2.9}}
	_, err := FitLaw(context.Background(), Chinchilla, obs, Options{})
	if err == nil || !errorsIs(err, ErrTooFewPoints) {
		t.Fatalf("err = %v, want ErrTooFewPoints", err)
	}
}
