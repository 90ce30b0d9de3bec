package scaling

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The IsoFLOP tests' truth is hoffmann (bench_test.go), whose N_opt
// exponent is beta/(alpha+beta) = 0.4516.

// isoDesign returns runs at each budget: sizes spaced by 10^(1/4) over
// ±half a decade around shift times the true compute-optimal size, with
// D = C/(6N) and log-normal noise sigma.
func isoDesign(rng *rand.Rand, budgets []float64, shift, sigma float64, sizes int) []Obs {
	fr := FrontierOf(hoffmann)
	var obs []Obs
	for _, c := range budgets {
		n0 := fr.At(c).N * shift
		for k := range sizes {
			u := (float64(k) - float64(sizes-1)/2) / 4 * math.Ln10
			n := n0 * math.Exp(u)
			o := Obs{N: n, D: c / (6 * n)}
			o.Loss = Chinchilla.Predict(hoffmann, o)
			if sigma > 0 {
				o.Loss *= math.Exp(sigma * rng.NormFloat64())
			}
			obs = append(obs, o)
		}
	}
	return obs
}

func logBudgets(lo, hi float64, k int) []float64 {
	var out []float64
	for i := range k {
		out = append(out, math.Pow(10, lo+(hi-lo)*float64(i)/float64(k-1)))
	}
	return out
}

// TestIsoFLOPExact fits noise-free data: the parabola approximates each
// IsoFLOP curve with the same error in log N at every budget (the curve's
// shape in log N/N_opt is the same up to scale), so the exponent is the
// law's exactly even where the design is off-centre.
func TestIsoFLOPExact(t *testing.T) {
	want := hoffmann[4] / (hoffmann[3] + hoffmann[4])
	for _, shift := range []float64{1, 1.8} {
		t.Run(fmt.Sprint("design centred at ", shift, "×N_opt"), func(t *testing.T) {
			obs := isoDesign(nil, logBudgets(18, 22, 5), shift, 0, 5)
			r, err := IsoFLOPFit(context.Background(), obs, IsoFLOPOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Budgets) != 5 || r.Used != 5 {
				t.Fatalf("%d budgets, %d used; want 5 and 5: %+v", len(r.Budgets), r.Used, r.Budgets)
			}
			if math.Abs(r.A-want) > 1e-6 || math.Abs(r.B-(1-want)) > 1e-6 {
				t.Errorf("a = %.7f, b = %.7f; want %.7f and %.7f", r.A, r.B, want, 1-want)
			}
			fr := FrontierOf(hoffmann)
			for _, b := range r.Budgets {
				if ratio := b.NOpt / fr.At(b.C).N; math.Abs(math.Log(ratio)) > math.Log(1.2) {
					t.Errorf("C=%.3g: N_opt %.4g, true %.4g", b.C, b.NOpt, fr.At(b.C).N)
				}
			}
			n, d, _, _ := r.At(1e23)
			if math.Abs(n*d*6/1e23-1) > 1e-12 {
				t.Errorf("N_opt·D_opt·6 = %g at C = 1e23", 6*n*d)
			}
		})
	}
}

func TestIsoFLOPRefusals(t *testing.T) {
	budgets := logBudgets(18, 21, 4)
	tests := []struct {
		name    string
		obs     []Obs
		refused []string // per budget, a substring of the reason or ""
		err     string
	}{
		{name: "sizes all above the optimum", obs: append(isoDesign(nil, budgets[:2], 1, 0, 5), isoDesign(nil, budgets[2:], 8, 0, 5)...),
			refused: []string{"", "", "smallest size", "smallest size"}},
		{name: "sizes all below the optimum", obs: isoDesign(nil, budgets, 0.12, 0, 5),
			refused: []string{"largest size", "largest size", "largest size", "largest size"}, err: "0 of 4 budgets"},
		{name: "two sizes", obs: append(isoDesign(nil, budgets[:3], 1, 0, 5), isoDesign(nil, budgets[3:], 1, 0, 2)...),
			refused: []string{"", "", "", "2 distinct sizes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := IsoFLOPFit(context.Background(), tc.obs, IsoFLOPOptions{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(r.Budgets) != len(tc.refused) {
				t.Fatalf("%d budgets, want %d", len(r.Budgets), len(tc.refused))
			}
			for i, b := range r.Budgets {
				if (tc.refused[i] == "") != (b.Refused == "") || !strings.Contains(b.Refused, tc.refused[i]) {
					t.Errorf("budget %d (C=%.3g): refused %q, want %q", i, b.C, b.Refused, tc.refused[i])
				}
			}
		})
	}
}

// TestIsoFLOPTolerance checks the grouping: runs whose compute differs by
// a few percent are one budget, budgets a factor apart are not.
func TestIsoFLOPTolerance(t *testing.T) {
	obs := isoDesign(nil, logBudgets(18, 21, 4), 1, 0, 5)
	for i := range obs {
		obs[i].D *= 1 + 0.01*float64(i%5) // 0 to 4% above the budget
	}
	for _, tc := range []struct {
		tol  float64
		want int
	}{{0.1, 4}, {0.001, 20}} {
		if got := len(budgetsOf(obs, tc.tol)); got != tc.want {
			t.Errorf("tolerance %g: %d budgets, want %d", tc.tol, got, tc.want)
		}
	}
}

// TestIsoFLOPCoverage checks that Approach 2's bootstrap interval for the
// N_opt exponent holds the true exponent at the nominal rate, with the
// coverage study's binomial design (one parameter; SCALING_LONG=1 for the
// long run), once resampling the parabolas' residuals and once drawing
// from the known seed noise.
func TestIsoFLOPCoverage(t *testing.T) {
	want := hoffmann[4] / (hoffmann[3] + hoffmann[4])
	d, resamples, err := coveragePlan(2)
	if err != nil {
		t.Fatal(err)
	}
	const sigma = 0.004
	for _, withNoise := range []bool{false, true} {
		t.Run(fmt.Sprint("seed noise known: ", withNoise), func(t *testing.T) {
			exponentCoverage(t, want, d, resamples, func(s int) (float64, Interval, int) {
				rng := rand.New(rand.NewPCG(uint64(s), 31))
				obs := isoDesign(rng, logBudgets(18, 21, 6), 1.5, sigma, 7)
				o := IsoFLOPOptions{Resamples: resamples, Seed: uint64(s)}
				if withNoise {
					o.Noise = &Noise{Pooled: sigma}
				}
				r, err := IsoFLOPFit(context.Background(), obs, o)
				if err != nil {
					t.Fatal(err)
				}
				return r.A, r.ACI, r.Failed
			})
		})
	}
}

// exponentCoverage runs a coverage study of the one exponent a with
// truth want over d's data sets, fit(s) returning data set s's estimate,
// interval and failed replicates, logs the hits and fails the test on the
// assessment's failures.
func exponentCoverage(t *testing.T, want float64, d coverageDesign, resamples int, fit func(s int) (float64, Interval, int)) {
	t.Helper()
	st := coverageStudy{names: []string{"a"}, pos: []bool{false}, truth: []float64{want},
		est: make([][]float64, 1), ivs: make([][]Interval, 1)}
	failed := 0
	for s := range d.sets {
		a, iv, f := fit(s)
		failed += f
		st.est[0], st.ivs[0] = append(st.est[0], a), append(st.ivs[0], iv)
	}
	for _, r := range st.assess(d) {
		t.Logf("%d data sets, %d resamples: a's interval held %.4f in %d (%.3f, %.3f–%.3f; width ×%.2f), threshold %d; %d replicates failed",
			d.sets, resamples, want, r.hits, float64(r.hits)/float64(r.sets), r.lo, r.hi, r.widthRatio, d.minHits, failed)
		for _, msg := range r.failures {
			t.Error(msg)
		}
	}
}
