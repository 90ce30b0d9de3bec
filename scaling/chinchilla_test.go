package scaling

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// TestChinchillaGrid fits the synthetic 240-run set from Hoffmann et al.'s
// 4,500-point grid and checks that the grid optimum is the one a single,
// tightly converged start from Hoffmann's published parameters reaches: the
// stopping rule must not leave that start next to the optimum (the failure
// Besiroglu et al. found in SciPy's defaults).
func TestChinchillaGrid(t *testing.T) {
	if testing.Short() {
		t.Skip("4,500 starts")
	}
	obs := readSynthetic(t)
	ctx := context.Background()
	grid, err := FitLaw(ctx, Chinchilla, obs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if grid.Starts != 4500 {
		t.Errorf("%d starts, want 4500", grid.Starts)
	}
	one, err := FitLaw(ctx, Chinchilla, obs, Options{Starts: [][]float64{hoffmann}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grid: %v objective %.12g, %d of %d starts agree", grid.Params, grid.Objective, grid.Agree, grid.Starts)
	if d := math.Abs(grid.Objective - one.Objective); d > 1e-10*grid.Objective {
		t.Errorf("grid objective %.14g, Hoffmann start %.14g", grid.Objective, one.Objective)
	}
	for j, name := range grid.Names {
		if d := math.Abs(grid.Params[j]/one.Params[j] - 1); d > 1e-5 {
			t.Errorf("%s: grid %.8g, Hoffmann start %.8g", name, grid.Params[j], one.Params[j])
		}
	}
	if grid.Agree < 100 {
		t.Errorf("only %d starts reached the optimum", grid.Agree)
	}
}

// TestRelativeTolerance scales the objective by 1e-6 (the mean instead of
// the sum, and more) and checks the optimum does not move: stopping tests
// are relative to the objective's own scale.
func TestRelativeTolerance(t *testing.T) {
	obs := readSynthetic(t)
	lay, err := newLayout(Chinchilla, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvaluator(Chinchilla.bind(obs), &lay, Loss{}, obs)
	run := func(scale float64) (float64, []float64) {
		z := make([]float64, 5)
		Chinchilla.internal(hoffmann, z)
		fg := func(x, g []float64) float64 {
			f := ev.fg(x, g)
			for i := range g {
				g[i] *= scale
			}
			return f * scale
		}
		r := newLBFGS(5, 10).minimize(fg, z, DefaultSettings)
		return r.f / scale, z
	}
	f1, z1 := run(1)
	f2, z2 := run(1e-6)
	if math.Abs(f1-f2) > 1e-12*f1 {
		t.Errorf("objective %.15g at scale 1, %.15g at scale 1e-6", f1, f2)
	}
	for i := range z1 {
		if math.Abs(z1[i]-z2[i]) > 1e-5*math.Max(1, math.Abs(z1[i])) {
			t.Errorf("θ[%d]: %.10g vs %.10g", i, z1[i], z2[i])
		}
	}
}

// TestDeterministic checks that random starts and the bootstrap give
// identical results for a seed, whatever the number of workers.
func TestDeterministic(t *testing.T) {
	obs := readSynthetic(t)[:60]
	ctx := context.Background()
	var objs []float64
	var ivs []Interval
	for _, workers := range []int{1, 2, 3} {
		f, err := FitLaw(ctx, Chinchilla, obs, Options{RandomStarts: 40, Seed: 7, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Bootstrap(ctx, f, BootstrapOptions{Resamples: 40, Seed: 7, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, f.Objective)
		ivs = append(ivs, b.Intervals[3])
	}
	for i := 1; i < len(objs); i++ {
		if objs[i] != objs[0] || ivs[i] != ivs[0] {
			t.Errorf("workers differ: objectives %v, alpha intervals %v", objs, ivs)
		}
	}
}

// TestScreeningKeepsOptimum fits Chinchilla data sets drawn from varied
// parameters, sizes and noise with the default screening and with every
// start converged fully, and checks both land on the same optimum: the
// screening pass may only save work, never change the answer. Three data
// sets by default, twelve with SCALING_LONG=1.
func TestScreeningKeepsOptimum(t *testing.T) {
	if testing.Short() {
		t.Skip("4,500 starts per fit")
	}
	sets := 3
	if os.Getenv("SCALING_LONG") != "" {
		sets = 12
	}
	ctx := context.Background()
	for seed := range sets {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		n := []int{40, 80, 160, 240}[seed%4]
		noise := []float64{0.002, 0.005, 0.02}[(seed/4)%3]
		e := 1.5 + rng.Float64()
		a, b := 100+900*rng.Float64(), 300+3000*rng.Float64()
		alpha, beta := 0.25+0.2*rng.Float64(), 0.25+0.2*rng.Float64()
		obs := make([]Obs, n)
		for i := range obs {
			params := math.Exp(math.Log(4e7) + rng.Float64()*math.Log(1.6e10/4e7))
			compute := math.Exp(math.Log(6e18) + rng.Float64()*math.Log(3e21/6e18))
			tokens := compute / (6 * params)
			loss := e + a/math.Pow(params, alpha) + b/math.Pow(tokens, beta)
			obs[i] = Obs{N: params, D: tokens, Loss: loss * math.Exp(noise*rng.NormFloat64())}
		}
		screened, err := FitLaw(ctx, Chinchilla, obs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		full, err := FitLaw(ctx, Chinchilla, obs, Options{Screen: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("set %d (%d points, noise %g): objective %.12g; %d starts agree screened, %d fully converged",
			seed, n, noise, full.Objective, screened.Agree, full.Agree)
		if d := screened.Objective/full.Objective - 1; math.Abs(d) > 1e-10 {
			t.Errorf("set %d: screened objective %.14g, fully converged %.14g", seed, screened.Objective, full.Objective)
		}
		if screened.Agree < 50 {
			t.Errorf("set %d: only %d screened starts reached the optimum", seed, screened.Agree)
		}
	}
}
