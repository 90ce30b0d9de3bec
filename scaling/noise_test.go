package scaling

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"gonum.org/v1/gonum/stat"
)

func TestSeedNoise(t *testing.T) {
	logsd := func(ls ...float64) (float64, float64) {
		var v []float64
		for _, l := range ls {
			v = append(v, math.Log(l))
		}
		return stat.StdDev(v, nil), float64(len(ls) - 1)
	}
	tests := []struct {
		name    string
		obs     []Obs
		configs int
		err     string
		// want computes the pooled SD from the replicate losses.
		want func() float64
	}{
		{name: "two configurations", obs: []Obs{
			{X: 1, Loss: 3.0}, {X: 1, Loss: 3.1}, {X: 1, Loss: 2.9},
			{X: 2, Loss: 2.5}, {X: 2, Loss: 2.52},
			{X: 4, Loss: 2.2},
		}, configs: 2, want: func() float64 {
			s1, d1 := logsd(3.0, 3.1, 2.9)
			s2, d2 := logsd(2.5, 2.52)
			return math.Sqrt((d1*s1*s1 + d2*s2*s2) / (d1 + d2))
		}},
		{name: "rows of one run are averaged", obs: []Obs{
			{X: 1, Loss: 3.0, Group: "a"}, {X: 1, Loss: 3.2, Group: "a"},
			{X: 1, Loss: 2.9, Group: "b"},
		}, configs: 1, want: func() float64 { s, _ := logsd(3.1, 2.9); return s }},
		{name: "no replicates", obs: []Obs{{X: 1, Loss: 3}, {X: 2, Loss: 2.5}}, err: "no configuration has two runs"},
		{name: "identical replicates", obs: []Obs{{X: 1, Loss: 3}, {X: 1, Loss: 3}, {X: 2, Loss: 2.5}}, err: "identical losses"},
		{name: "checkpoints are not seeds", obs: []Obs{{X: 1, Loss: 3, Group: "a"}, {X: 1, Loss: 2.9, Group: "a"}}, err: "no configuration has two runs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := SeedNoise(Power, tc.obs, 0.95)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("SeedNoise = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(n.Configs) != tc.configs || !n.Measured {
				t.Errorf("%d configurations (measured %v), want %d", len(n.Configs), n.Measured, tc.configs)
			}
			if want := tc.want(); math.Abs(n.Pooled-want) > 1e-12*want {
				t.Errorf("pooled σ = %g, want %g", n.Pooled, want)
			}
			if !(n.PooledCI.Lo < n.Pooled && n.Pooled < n.PooledCI.Hi) {
				t.Errorf("pooled σ %g outside its interval %v", n.Pooled, n.PooledCI)
			}
		})
	}
}

// TestSeedNoiseTrend checks that a noise level growing with the loss is
// found, with its exponent, and that a constant one is not taken for a
// trend.
func TestSeedNoiseTrend(t *testing.T) {
	for _, slope := range []float64{0, 2} {
		t.Run(fmt.Sprint("slope ", slope), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(slope)))
			var obs []Obs
			for i := range 20 {
				x := math.Pow(10, float64(i)/5)
				l := Power.Predict([]float64{2, 5, 0.5}, Obs{X: x})
				sd := 0.005 * math.Pow(l/3, slope)
				for range 6 {
					obs = append(obs, Obs{X: x, Loss: l * math.Exp(sd*rng.NormFloat64())})
				}
			}
			n, err := SeedNoise(Power, obs, 0.95)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("slope %.3f ± %.3f, trend %v, pooled %.4g", n.Slope, n.SlopeSE, n.Trend, n.Pooled)
			if n.Trend != (slope != 0) {
				t.Errorf("trend %v (slope %.3f ± %.3f), want %v", n.Trend, n.Slope, n.SlopeSE, slope != 0)
			}
			if math.Abs(n.Slope-slope) > 3*n.SlopeSE {
				t.Errorf("slope %.3f ± %.3f, true %g", n.Slope, n.SlopeSE, slope)
			}
			if slope != 0 {
				hi, lo := n.At(5), n.At(2.2)
				if want := math.Pow(5/2.2, n.Slope); math.Abs(hi/lo-want) > 1e-9*want {
					t.Errorf("σ(5)/σ(2.2) = %g, want (5/2.2)^slope = %g", hi/lo, want)
				}
			}
		})
	}
}

// TestScaledGradient checks the analytic gradient of every loss with
// per-observation noise scales against central differences.
func TestScaledGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	truth := []float64{1.8, 480, 2100, 0.34, 0.37}
	var obs []Obs
	for i := range 12 {
		n := math.Pow(10, 7.5+0.3*float64(i%4))
		d := n * math.Pow(10, 0.5+0.3*float64(i/4))
		o := Obs{N: n, D: d, Scale: 0.5 + rng.Float64()*2}
		o.Loss = Chinchilla.Predict(truth, o) * math.Exp(0.02*rng.NormFloat64())
		obs = append(obs, o)
	}
	for _, loss := range []Loss{{Kind: HuberLog}, {Kind: LeastSquares}, {Kind: HuberLikelihood}} {
		t.Run(loss.String(), func(t *testing.T) {
			lay, err := newLayout(Chinchilla, Options{Loss: loss})
			if err != nil {
				t.Fatal(err)
			}
			lay.centers = Chinchilla.centers(obs)
			ev := newEvaluator(Chinchilla.bind(obs), &lay, loss, obs)
			if ev.scale == nil {
				t.Fatal("scales were not read")
			}
			z := make([]float64, lay.free)
			th := make([]float64, lay.p)
			Chinchilla.internal([]float64{1.9, 400, 2500, 0.33, 0.36}, th)
			copy(z, th)
			if lay.extra > 0 {
				z[len(z)-1] = math.Log(0.01)
			}
			lay.centerZ(z)
			g := make([]float64, len(z))
			f := ev.fg(z, g)
			// The fused Huber kernel must agree with the general loop.
			ev.mdl.eval(ev.theta, ev.lp, nil)
			if slow, _ := loss.residualGrad(ev.lp, ev.ly, ev.y, ev.scale, nil, z[len(z)-1]); loss.Kind == HuberLog && math.Abs(slow-f) > 1e-12*math.Abs(slow) {
				t.Errorf("fused objective %.15g, general loop %.15g", f, slow)
			}
			for j := range z {
				h := 1e-6 * math.Max(1, math.Abs(z[j]))
				zp, zm := append([]float64(nil), z...), append([]float64(nil), z...)
				zp[j] += h
				zm[j] -= h
				num := (ev.fg(zp, nil) - ev.fg(zm, nil)) / (2 * h)
				if math.Abs(num-g[j]) > 1e-5*math.Max(1, math.Abs(num)) {
					t.Errorf("∂f/∂z[%d] = %g, central difference %g", j, g[j], num)
				}
			}
		})
	}
}

// TestWeightedFit checks that scales weight the fit: with least squares,
// a common scale c divides the objective by c² and leaves the optimum,
// and a large scale on a corrupted point removes its pull.
func TestWeightedFit(t *testing.T) {
	truth := []float64{2, 5, 0.4}
	var obs []Obs
	for i := range 10 {
		x := math.Pow(10, 0.5+3*float64(i)/9)
		obs = append(obs, Obs{X: x, Loss: Power.Predict(truth, Obs{X: x})})
	}
	obs[9].Loss *= 1.05 // one corrupted run at the largest scale
	ctx := context.Background()
	o := Options{Loss: Loss{Kind: LeastSquares}}
	plain, err := FitLaw(ctx, Power, obs, o)
	if err != nil {
		t.Fatal(err)
	}
	scaled := append([]Obs(nil), obs...)
	for i := range scaled {
		scaled[i].Scale = 2
	}
	common, err := FitLaw(ctx, Power, scaled, o)
	if err != nil {
		t.Fatal(err)
	}
	if r := common.Objective / plain.Objective; math.Abs(r-0.25) > 1e-6 {
		t.Errorf("objective with scale 2 is %g of the unscaled one, want 1/4", r)
	}
	for j := range plain.Params {
		if math.Abs(common.Params[j]-plain.Params[j]) > 1e-6*math.Abs(plain.Params[j]) {
			t.Errorf("%s = %g with a common scale, %g without", plain.Names[j], common.Params[j], plain.Params[j])
		}
	}
	noisy := append([]Obs(nil), obs...)
	noisy[9].Scale = 1e3
	w, err := FitLaw(ctx, Power, noisy, o)
	if err != nil {
		t.Fatal(err)
	}
	if dw, dp := math.Abs(w.Params[0]-truth[0]), math.Abs(plain.Params[0]-truth[0]); !(dw < dp/10) {
		t.Errorf("E off by %g weighted, %g unweighted: the noisy point still pulls the fit", dw, dp)
	}
}

// TestSeedBlocks checks the two-stage resample of the seed noise: the
// stage that moves configurations is shut off when the law explains their
// means to within their seed noise and carries the excess when it does not,
// every configuration's resampled seed spread matches the noise model, and
// the leverages sum to the number of free parameters.
func TestSeedBlocks(t *testing.T) {
	truth := []float64{2, 5, 0.4}
	ctx := context.Background()
	loss := Loss{Kind: LeastSquares}
	tests := []struct {
		name string
		// misfit multiplies configuration i's losses by exp(misfit·(−1)^i).
		misfit               float64
		minShrink, maxShrink float64
	}{
		{"the law is right", 0, 0, 0.8},
		{"the law misses each configuration by 20 times the seed noise", 0.2, 0.95, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			obs := noiseCase(rng, truth)
			for i := range obs {
				obs[i].Loss *= math.Exp(tc.misfit * float64(1-2*((i/4)%2)))
			}
			nz, err := SeedNoise(Power, obs, 0.95)
			if err != nil {
				t.Fatal(err)
			}
			f, err := FitLaw(ctx, Power, nz.Weigh(obs, loss), Options{Loss: loss, Noise: nz})
			if err != nil {
				t.Fatal(err)
			}
			sb := newSeedBlocks(f, runsByConfig(Power, f.obs))
			if len(sb.rows) != 8 || sb.nu != nz.DoF {
				t.Fatalf("%d configurations with %d degrees of freedom, want 8 and %d", len(sb.rows), sb.nu, nz.DoF)
			}
			if sb.shrink < tc.minShrink || sb.shrink > tc.maxShrink {
				t.Errorf("between-configuration share %g, want %g to %g", sb.shrink, tc.minShrink, tc.maxShrink)
			}
			var sumLev float64
			for _, h := range blockLeverage(f, sb.rows) {
				sumLev += h
			}
			// The trace of the hat matrix is the 3 free parameters; the
			// blocks' sum differs only as far as the rows of one
			// configuration carry different weights (each run's own loss).
			if math.Abs(sumLev-3) > 0.1 {
				t.Errorf("leverages sum to %g, want about the 3 free parameters", sumLev)
			}
			// Within a configuration the resampled log losses spread as
			// the model's noise there, times the level's draw (mean
			// square ν/(ν − 2)) and the exponent's, exp(δ·log(L/RefLoss))
			// with δ ~ N(0, SE²) (mean square exp(2SE²log²(L/RefLoss)))).
			const draws = 4000
			ss := make([]float64, len(sb.rows))
			var sub []Obs
			for range draws {
				sub = sb.resample(rng, f, sub)
				k := 0
				for c, rows := range sb.rows {
					var m float64
					for j := range rows {
						m += math.Log(sub[k+j].Loss)
					}
					m /= float64(len(rows))
					for j := range rows {
						d := math.Log(sub[k+j].Loss) - m
						ss[c] += d * d
					}
					k += len(rows)
				}
			}
			nu := float64(sb.nu)
			for c, rows := range sb.rows {
				got := math.Sqrt(ss[c] / float64(draws*(len(rows)-1)))
				l := f.Predict(f.obs[rows[0]])
				lr := math.Log(l / nz.RefLoss)
				want := nz.At(l) * math.Sqrt(nu/(nu-2)*math.Exp(2*nz.SlopeSE*nz.SlopeSE*lr*lr))
				if math.Abs(got/want-1) > 0.05 {
					t.Errorf("configuration %d: resampled seed SD %g, the model's %g", c, got, want)
				}
			}
		})
	}
}

// TestTwoSided checks twoSided's bounds against the binomial distribution:
// each tail holds at most α/2, and neither bound can move inwards.
func TestTwoSided(t *testing.T) {
	for _, tc := range []struct {
		n     int
		alpha float64
	}{{704, 0.01 / 4}, {33, 0.001 / 4}, {200, 0.05}} {
		lo, hi := twoSided(tc.n, 0.95, tc.alpha)
		b := distuv.Binomial{N: float64(tc.n), P: 0.95}
		below := func(k int) float64 { return b.CDF(float64(k - 1)) }
		above := func(k int) float64 { return 1 - b.CDF(float64(k)) }
		if below(lo) > tc.alpha/2 || below(lo+1) <= tc.alpha/2 {
			t.Errorf("n %d: lowest %d, P(X < %d) = %g, P(X < %d) = %g", tc.n, lo, lo, below(lo), lo+1, below(lo+1))
		}
		if above(hi) > tc.alpha/2 || (hi < tc.n && above(hi-1) <= tc.alpha/2) {
			t.Errorf("n %d: highest %d, P(X > %d) = %g, P(X > %d) = %g", tc.n, hi, hi, above(hi), hi-1, above(hi-1))
		}
		t.Logf("%d data sets, α %g: %d to %d hits (%.3f to %.3f)", tc.n, tc.alpha, lo, hi, float64(lo)/float64(tc.n), float64(hi)/float64(tc.n))
	}
}

// noiseCase draws a power law measured at 8 configurations with 4 seeds
// each, whose seed noise on log loss grows with the loss as L^3.
func noiseCase(rng *rand.Rand, truth []float64) []Obs {
	var obs []Obs
	for i := range 8 {
		x := math.Pow(10, 0.5+3*float64(i)/7)
		l := Power.Predict(truth, Obs{X: x})
		for s := range 4 {
			obs = append(obs, Obs{X: x, Loss: l * math.Exp(noiseSD(l)*rng.NormFloat64()), Group: fmt.Sprintf("%d/%d", i, s)})
		}
	}
	return obs
}

func noiseSD(l float64) float64 { return 0.01 * math.Pow(l/3, 3) }

// TestSeedNoiseCoverage draws data with known heteroscedastic seed noise,
// measures the noise from the replicates, fits weighted by it, bootstraps
// hierarchically and counts how often each parameter's interval holds the
// truth, and how often the prediction interval for a new seed at the
// largest configuration holds that seed's loss. The number of data sets is
// the coverage study's design (SCALING_LONG=1 for the long run), and the
// test is two-sided: a count above what a correct interval reaches (too
// wide) fails as well as one below (twoSided).
func TestSeedNoiseCoverage(t *testing.T) {
	truth := []float64{2.0, 5.0, 0.4}
	const m = 4 // three parameters and the prediction interval
	d, resamples, err := coveragePlan(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := coverageStudy{names: Power.Params(), pos: Power.positive(), truth: truth,
		est: make([][]float64, 3), ivs: make([][]Interval, 3)}
	piHits, trends := 0, 0
	xTop := math.Pow(10, 3.5)
	for s := range d.sets {
		rng := rand.New(rand.NewPCG(uint64(s), 77))
		obs := noiseCase(rng, truth)
		nz, err := SeedNoise(Power, obs, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		if nz.Trend {
			trends++
		}
		loss := Loss{Kind: LeastSquares}
		f, err := FitLaw(ctx, Power, nz.Weigh(obs, loss), Options{Loss: loss, Seed: uint64(s), Noise: nz})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Bootstrap(ctx, f, BootstrapOptions{Resamples: resamples, Seed: uint64(s), Hierarchical: true})
		if err != nil {
			t.Fatal(err)
		}
		if !b.Hierarchical || b.Configs != 8 {
			t.Fatalf("bootstrap hierarchical %v over %d configurations, want 8", b.Hierarchical, b.Configs)
		}
		for j := range 3 {
			st.est[j] = append(st.est[j], f.Params[j])
			st.ivs[j] = append(st.ivs[j], b.Intervals[j])
		}
		l := Power.Predict(truth, Obs{X: xTop})
		fresh := l * math.Exp(noiseSD(l)*rng.NormFloat64())
		if f.PredictInterval(Obs{X: xTop}).Seed.Contains(fresh) {
			piHits++
		}
	}
	var report string
	lowest, highest := twoSided(d.sets, coverageNominal, coverageAlpha()/m)
	check := func(name string, hits int) {
		if hits < lowest || hits > highest {
			t.Errorf("%s: 95%% interval held the truth in %d of %d data sets (%.3f), outside the %d to %d a correct interval stays within with probability %.4f",
				name, hits, d.sets, float64(hits)/float64(d.sets), lowest, highest, 1-coverageAlpha()/m)
		}
	}
	for _, r := range st.assess(d) {
		report += fmt.Sprintf(" %s %.3f (%.3f–%.3f, width ×%.2f)", r.name, float64(r.hits)/float64(r.sets), r.lo, r.hi, r.widthRatio)
		for _, msg := range r.failures {
			if !r.coverageLow {
				t.Errorf("%s: %s", r.name, msg)
			}
		}
		check(r.name, r.hits)
	}
	check("new-seed prediction interval", piHits)
	lo, hi := clopperPearson(piHits, d.sets, 0.95)
	t.Logf("%d data sets, %d resamples, accepted hits %d to %d; trend found in %d; coverage:%s; new-seed prediction interval %.3f (%.3f–%.3f)",
		d.sets, resamples, lowest, highest, trends, report, float64(piHits)/float64(d.sets), lo, hi)
}

// coverageAlpha is the run's false-failure probability over all the
// parameters tested (see coveragePlan).
func coverageAlpha() float64 {
	if os.Getenv("SCALING_LONG") != "" {
		return longAlpha
	}
	return shortAlpha
}

// twoSided returns the hit counts a correct interval of coverage nominal
// stays within over n data sets, but for probability alpha split between
// the tails: the largest lowest with P(X < lowest) ≤ α/2 and the smallest
// highest with P(X > highest) ≤ α/2, X ~ Binomial(n, nominal). With few
// data sets highest is n: the short run cannot tell a too-wide interval.
func twoSided(n int, nominal, alpha float64) (lowest, highest int) {
	b := distuv.Binomial{N: float64(n), P: nominal}
	for lowest < n && b.CDF(float64(lowest)) <= alpha/2 {
		lowest++
	}
	highest = n
	for highest > 0 && 1-b.CDF(float64(highest-1)) <= alpha/2 {
		highest--
	}
	return lowest, highest
}
