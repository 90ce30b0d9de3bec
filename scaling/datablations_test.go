package scaling

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

func readDatablations(t testing.TB, name string) []Obs {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cols := Columns{N: "params", D: "tokens", U: "unique_tokens", Loss: "val_loss"}
	obs, err := ReadCSV(f, DataConstrained, cols)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

// publishedGrid is Muennighoff et al.'s grid of starts for R_D*, R_N*
// (linspace(0, 20, 4); the zero starts give NaN in their code and drop out).
func publishedGrid() [][]float64 {
	var s [][]float64
	for _, rd := range []float64{20.0 / 3, 40.0 / 3, 20} {
		for _, rn := range []float64{20.0 / 3, 40.0 / 3, 20} {
			s = append(s, datablationsParams(rd, rn))
		}
	}
	return s
}

// TestDatablationsReproduction reproduces the repetition fit of Muennighoff
// et al. 2023 on their 182 C4 runs with the base constants fixed.
//
// The summed Huber objective has several local optima. The published
// (R_D*, R_N*) = (15.388, 5.310) is the one most of the published starts
// reach (objective 0.01582593, as SciPy in float64); the multi-start fit
// also finds a slightly lower one near (47, 2.3), objective 0.01580738.
// Both are asserted, and the bootstrap shows why: R_D* is bounded below by
// the data and not above.
func TestDatablationsReproduction(t *testing.T) {
	obs := readDatablations(t, "datablations_c4_val_losses.csv")
	if len(obs) != 182 {
		t.Fatalf("%d runs, want 182", len(obs))
	}
	ctx := context.Background()
	pub, err := FitLaw(ctx, DataConstrained, obs, Options{Fixed: datablationsBase, Starts: publishedGrid()})
	if err != nil {
		t.Fatal(err)
	}
	modal := pub.Optima[0]
	for _, o := range pub.Optima {
		if o.Starts > modal.Starts {
			modal = o
		}
	}
	rd, rn := modal.Params[5], modal.Params[6]
	t.Logf("published grid: modal optimum R_D*=%.4f R_N*=%.4f objective %.10f (%d of %d starts)",
		rd, rn, modal.Objective, modal.Starts, pub.Starts)
	if math.Abs(rd-15.39) > 0.1 || math.Abs(rn-5.31) > 0.05 {
		t.Errorf("published procedure: R_D* = %.4f, R_N* = %.4f, want about 15.388 and 5.310", rd, rn)
	}
	if math.Abs(modal.Objective-0.01582593) > 1e-8 {
		t.Errorf("objective at the published optimum %.10f, want 0.01582593", modal.Objective)
	}
	at := func(p []float64) Goodness {
		f := &Fit{Law: DataConstrained, Params: p, obs: obs, Free: 2}
		_, g := goodness(f)
		return g
	}
	gRep := at(modal.Params)
	gNone := at(datablationsParams(math.Inf(1), math.Inf(1)))
	// Without repetition terms the law is Chinchilla's in N and total D.
	t.Logf("R² with repetition %.4f (log %.4f), without %.4f (log %.4f)", gRep.R2, gRep.R2Log, gNone.R2, gNone.R2Log)
	if math.Abs(gRep.R2-0.772) > 0.005 || math.Abs(gNone.R2-0.445) > 0.005 {
		t.Errorf("R² = %.4f with and %.4f without repetition terms, want 0.772 and 0.445", gRep.R2, gNone.R2)
	}

	// The default multi-start reaches the lower optimum.
	best, err := FitLaw(ctx, DataConstrained, obs, Options{Fixed: datablationsBase})
	if err != nil {
		t.Fatal(err)
	}
	brd, _ := best.Param("RD_star")
	t.Logf("multi-start: R_D*=%.4f R_N*=%.4f objective %.10f (%d of %d agree); optima %d",
		brd, best.Params[6], best.Objective, best.Agree, best.Starts, len(best.Optima))
	if best.Objective > modal.Objective {
		t.Errorf("multi-start objective %.10f above the published optimum's %.10f", best.Objective, modal.Objective)
	}

	// Bootstrap over runs: R_D* is weakly identified.
	if _, err := Bootstrap(ctx, pub, BootstrapOptions{Resamples: 200, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	iv, _ := pub.Bootstrap.Interval(pub, "RD_star")
	t.Logf("R_D* 95%% interval (%.3g, %.3g); warnings: %q", iv.Lo, iv.Hi, pub.Warnings)
	if iv.Hi < 100 || iv.Lo > 15 {
		t.Errorf("R_D* interval (%.3g, %.3g): want a lower end below the estimate and an upper end ≫ 100", iv.Lo, iv.Hi)
	}
	if !hasWarning(pub, "RD_star") {
		t.Errorf("no identification warning for RD_star: %q", pub.Warnings)
	}
}

// TestDatablationsDataDecayOnly reproduces the "data decay only" variant
// (no excess-parameter term): R_D* = 2.915.
func TestDatablationsDataDecayOnly(t *testing.T) {
	obs := readDatablations(t, "datablations_c4_val_losses.csv")
	fixed := map[string]float64{"RN_star": math.Inf(1)}
	for k, v := range datablationsBase {
		fixed[k] = v
	}
	f, err := FitLaw(context.Background(), DataConstrained, obs, Options{Fixed: fixed})
	if err != nil {
		t.Fatal(err)
	}
	if rd, _ := f.Param("RD_star"); math.Abs(rd-2.915) > 0.01 {
		t.Errorf("R_D* = %.4f, want 2.915", rd)
	}
}

func hasWarning(f *Fit, sub string) bool {
	for _, w := range f.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// TestDatablationsSeedNoise measures the seed noise of Muennighoff et
// al.'s replicate runs (16 configurations with 4 seeds each) and fits the
// repetition law, base fixed, to the 182 published runs with the 52
// replicate seeds of the 13 of those configurations the paper kept added,
// twice: unweighted with a bootstrap over runs, and
// with the measured noise (weights, a hierarchical bootstrap over
// configurations then seeds, and new-seed prediction intervals). It logs
// how the intervals change; docs/scaling.md quotes the log. (All 296 runs
// of the seeds file include the runs the paper removed as outliers, and
// drive the fit to R_D* → ∞, R_N* → 0.)
func TestDatablationsSeedNoise(t *testing.T) {
	f, err := os.Open("testdata/datablations_c4_val_losses_with_seeds.csv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cols := Columns{N: "params", D: "tokens", U: "unique_tokens", Loss: "val_loss", Group: "run_name"}
	all, err := ReadCSV(f, DataConstrained, cols)
	if err != nil {
		t.Fatal(err)
	}
	var seeds []Obs
	for _, o := range all {
		if strings.Contains(o.Group, "seed") {
			seeds = append(seeds, o)
		}
	}
	pub := readDatablations(t, "datablations_c4_val_losses.csv")
	for i := range pub {
		pub[i].Group = fmt.Sprint("published ", i)
	}
	// Only the replicates of configurations the paper kept: the three
	// 44-and-14-epoch configurations are among the runs it removed.
	kept := map[string]bool{}
	for _, o := range pub {
		kept[configKey(DataConstrained, o)] = true
	}
	all = pub
	for _, o := range seeds {
		if kept[configKey(DataConstrained, o)] {
			all = append(all, o)
		}
	}
	nz, err := SeedNoise(DataConstrained, seeds, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := math.Inf(1), 0.0
	for _, c := range nz.Configs {
		if c.Seeds != 4 {
			t.Errorf("configuration %+v has %d seeds, want 4", c.At, c.Seeds)
		}
		lo, hi = math.Min(lo, c.SD), math.Max(hi, c.SD)
	}
	t.Logf("seed noise: %d configurations; per-configuration SD of loss %.4f to %.4f; pooled SD of log loss %.5f (95%% CI %.5f–%.5f, %d dof), median %.5f; σ ∝ L^%.2f ± %.2f, trend %v",
		len(nz.Configs), lo, hi, nz.Pooled, nz.PooledCI.Lo, nz.PooledCI.Hi, nz.DoF, nz.Median, nz.Slope, nz.SlopeSE, nz.Trend)
	if len(nz.Configs) != 16 || nz.DoF != 48 {
		t.Errorf("%d configurations, %d degrees of freedom; want 16 and 48", len(nz.Configs), nz.DoF)
	}
	// The data's README gives per-configuration SDs of 0.001 to 0.026 on
	// losses near 2.2 to 3.
	if !(nz.Pooled > 0.001/3 && nz.Pooled < 0.026/2.2) {
		t.Errorf("pooled σ of log loss %g outside what the per-configuration SDs allow", nz.Pooled)
	}

	ctx := context.Background()
	at := Obs{N: 6.34e9, D: 242e9, U: 25e9}
	type variant struct {
		name string
		obs  []Obs
		opts Options
		boot BootstrapOptions
	}
	loss := Loss{Kind: HuberLog}
	variants := []variant{
		{"182 published runs, runs resampled", pub, Options{Fixed: datablationsBase, Noise: nz}, BootstrapOptions{Resamples: 200, Seed: 1}},
		{"with the replicates, unweighted, runs resampled", all, Options{Fixed: datablationsBase}, BootstrapOptions{Resamples: 200, Seed: 1}},
		{"with the replicates, weighted, hierarchical", nz.Weigh(all, loss), Options{Fixed: datablationsBase, Noise: nz},
			BootstrapOptions{Resamples: 200, Seed: 1, Hierarchical: true}},
	}
	var widths []float64
	for _, v := range variants {
		fit, err := FitLaw(ctx, DataConstrained, v.obs, v.opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Bootstrap(ctx, fit, v.boot)
		if err != nil {
			t.Fatal(err)
		}
		rd, _ := b.Interval(fit, "RD_star")
		rn, _ := b.Interval(fit, "RN_star")
		pr := fit.PredictInterval(at)
		t.Logf("%s (%d runs, %d configurations): R_D* %.3g (%.3g, %.3g), R_N* %.3g (%.3g, %.3g); L(6.34e9, 242e9, 25e9) %.4f, curve CI (%.4f, %.4f), new-run PI from residuals (%.4f, %.4f), new-seed PI (%.4f, %.4f)",
			v.name, len(v.obs), b.Configs, fit.Params[5], rd.Lo, rd.Hi, fit.Params[6], rn.Lo, rn.Hi, pr.Value, pr.Mean.Lo, pr.Mean.Hi, pr.Range.Lo, pr.Range.Hi, pr.Seed.Lo, pr.Seed.Hi)
		if !(pr.Seed.Hi-pr.Seed.Lo >= pr.Mean.Hi-pr.Mean.Lo) || !(pr.Range.Hi-pr.Range.Lo >= pr.Mean.Hi-pr.Mean.Lo) {
			t.Errorf("%s: a new-run interval (%v, seed %v) is narrower than the curve's %v", v.name, pr.Range, pr.Seed, pr.Mean)
		}
		widths = append(widths, rn.Hi-rn.Lo)
		if v.boot.Hierarchical {
			// The law's misfit (R² 0.77) is far above the seed noise, so
			// the first stage, which carries it, must be on.
			sb := newSeedBlocks(fit, runsByConfig(DataConstrained, fit.obs))
			t.Logf("two-stage bootstrap: the law's misfit is %.3f of the configurations' mean residual spread", sb.shrink*sb.shrink)
			if sb.shrink < 0.5 {
				t.Errorf("first stage scaled by %g: the misfit would be dropped", sb.shrink)
			}
		}
		if v.boot.Hierarchical && b.Configs != len(configsOf(DataConstrained, all)) {
			t.Errorf("hierarchical bootstrap over %d configurations, the data have %d", b.Configs, len(configsOf(DataConstrained, all)))
		}
	}
	t.Logf("R_N* interval width: %.3g on the published runs, %.3g with the replicates unweighted, %.3g weighted and hierarchical", widths[0], widths[1], widths[2])
}
