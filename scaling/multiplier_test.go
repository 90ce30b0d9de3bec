package scaling

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestMultiplierExact checks the multiplier against laws built to have a
// known one: B's curve is A's at k times the scale, L_B(x) = L_A(k·x), so
// B needs 1/k of A's compute for any loss and m = k everywhere, in the
// limit too.
func TestMultiplierExact(t *testing.T) {
	const k = 2.5
	fr := Frontier{E: 1.69, A: 406.4, B: 410.7, Alpha: 0.34, Beta: 0.28}
	gamma := fr.Alpha * fr.Beta / (fr.Alpha + fr.Beta)
	s := math.Pow(k, -gamma)
	tests := []struct {
		name   string
		law    Law
		pa, pb []float64
		m      float64 // at every x
		limit  float64
	}{
		{"power law", Power, []float64{2, 5, 0.4}, []float64{2, 5 * math.Pow(k, -0.4), 0.4}, k, k},
		{"chinchilla frontier", Chinchilla, []float64{fr.E, fr.A, fr.B, fr.Alpha, fr.Beta},
			[]float64{fr.E, fr.A * s, fr.B * s, fr.Alpha, fr.Beta}, k, k},
		{"B the same recipe", Power, []float64{2, 5, 0.4}, []float64{2, 5, 0.4}, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, x := range []float64{1e2, 1e6, 1e21} {
				m, xb := multiplierAt(tc.law, tc.pa, tc.pb, x)
				if math.Abs(m-tc.m) > 1e-8*tc.m {
					t.Errorf("m(%g) = %.10g (x_B %g), want %g", x, m, xb, tc.m)
				}
			}
			if l, rule := limitOf(tc.law, tc.pa, tc.pb); math.Abs(l-tc.limit) > 1e-9*tc.limit {
				t.Errorf("limit %g (%s), want %g", l, rule, tc.limit)
			}
		})
	}
}

// TestMultiplierAsymptotes checks the cases where one recipe's asymptote is
// lower: the limit is unbounded one way or the other, and where B can
// never reach A's loss its multiplier is 0.
func TestMultiplierAsymptotes(t *testing.T) {
	a := []float64{2, 5, 0.4}
	lowerB := []float64{1.9, 5, 0.4}
	higherB := []float64{2.3, 5, 0.4}
	if l, _ := limitOf(Power, a, lowerB); !math.IsInf(l, 1) {
		t.Errorf("B's asymptote lower: limit %g, want +Inf", l)
	}
	if l, _ := limitOf(Power, a, higherB); l != 0 {
		t.Errorf("B's asymptote higher: limit %g, want 0", l)
	}
	// L_A(1e6) = 2.02 < E_B = 2.3: B never gets there.
	if m, xb := multiplierAt(Power, a, higherB, 1e6); m != 0 || !math.IsInf(xb, 1) {
		t.Errorf("B cannot reach A's loss: m = %g, x_B = %g; want 0 and +Inf", m, xb)
	}
	// At small x A's loss is high and B reaches it at a finite scale.
	if m, _ := multiplierAt(Power, a, higherB, 1); !(m > 0 && m < 1) {
		t.Errorf("m(1) = %g for a worse B, want in (0, 1)", m)
	}
}

// multiplierData fits two power laws to data from L_A and L_B(x) = L_A(k·x)
// with log-normal noise, and bootstraps both.
func multiplierData(t *testing.T, seed uint64, k float64, resamples int) (*Fit, *Fit) {
	t.Helper()
	truthA := []float64{2, 5, 0.4}
	truthB := []float64{2, 5 * math.Pow(k, -0.4), 0.4}
	var xs []float64
	for i := range 16 {
		xs = append(xs, math.Pow(10, 0.5+3*float64(i)/15))
	}
	var fits [2]*Fit
	for r, truth := range [][]float64{truthA, truthB} {
		rng := rand.New(rand.NewPCG(seed, uint64(r)))
		obs := PowerData(rng, truth, xs, 0.01)
		f, err := FitLaw(context.Background(), Power, obs, Options{Loss: Loss{Kind: LeastSquares}, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Bootstrap(context.Background(), f, BootstrapOptions{Resamples: resamples, Seed: seed*2 + uint64(r)}); err != nil {
			t.Fatal(err)
		}
		fits[r] = f
	}
	return fits[0], fits[1]
}

// TestMultiplierCoverage checks that the paired-bootstrap interval of the
// multiplier holds the true multiplier at the nominal rate, at a scale in
// the data and at one 3 times beyond it (the coverage study's binomial
// design; SCALING_LONG=1 for the long run), and that the second is flagged
// as extrapolated.
func TestMultiplierCoverage(t *testing.T) {
	const k = 2
	d, resamples, err := coveragePlan(2)
	if err != nil {
		t.Fatal(err)
	}
	at := []float64{100, 1e4}
	st := coverageStudy{names: []string{"m(100)", "m(1e4)"}, pos: []bool{true, true}, truth: []float64{k, k},
		est: make([][]float64, 2), ivs: make([][]Interval, 2)}
	for s := range d.sets {
		fa, fb := multiplierData(t, uint64(s), k, resamples)
		r, err := ComputeMultiplier(fa, fb, MultiplierOptions{At: at})
		if err != nil {
			t.Fatal(err)
		}
		for j, p := range r.At {
			st.est[j] = append(st.est[j], p.M)
			st.ivs[j] = append(st.ivs[j], p.CI)
		}
		if r.At[0].Extrapolated || !r.At[1].Extrapolated {
			t.Fatalf("data set %d: extrapolated flags %v and %v, want false and true", s, r.At[0].Extrapolated, r.At[1].Extrapolated)
		}
	}
	for _, o := range st.assess(d) {
		t.Logf("%s: interval held %g in %d of %d (%.3f, %.3f–%.3f; width ×%.2f), threshold %d",
			o.name, float64(k), o.hits, o.sets, float64(o.hits)/float64(o.sets), o.lo, o.hi, o.widthRatio, d.minHits)
		for _, msg := range o.failures {
			t.Errorf("%s: %s", o.name, msg)
		}
	}
}

// TestMultiplierGate checks the gate's three answers on one pair of
// recipes whose multiplier is known to be 2.
func TestMultiplierGate(t *testing.T) {
	fa, fb := multiplierData(t, 5, 2, 400)
	for _, tc := range []struct {
		gate float64
		want string
	}{{1.2, "yes"}, {2, "undecided"}, {4, "no"}} {
		t.Run(fmt.Sprint("gate ", tc.gate), func(t *testing.T) {
			r, err := ComputeMultiplier(fa, fb, MultiplierOptions{At: []float64{100}, Gate: tc.gate, Level: 0.95})
			if err != nil {
				t.Fatal(err)
			}
			p := r.At[0]
			t.Logf("m = %.3f (%.3f, %.3f), P(m > %g) = %.3f", p.M, p.CI.Lo, p.CI.Hi, tc.gate, p.PAbove)
			if p.Decision != tc.want {
				t.Errorf("gate %g: %q, want %q (m = %.3f, CI %v, P above %.3f)", tc.gate, p.Decision, tc.want, p.M, p.CI, p.PAbove)
			}
		})
	}
	if _, err := ComputeMultiplier(&Fit{Law: Power, Params: []float64{2, 5, 0.4}}, &Fit{Law: Power, Params: []float64{2, 4, 0.4}},
		MultiplierOptions{At: []float64{10}, Gate: 1}); err == nil {
		t.Error("a gate without bootstraps gave no error")
	}
}

// TestDataMultiplier checks the data multiplier on laws built for it: a
// Chinchilla law whose data term is A's at k times the tokens gives m = k
// at every point; data-constrained laws that differ only in how much
// repeated data is worth (R_D*) agree within one epoch (m = 1) and differ
// beyond it (m > 1 for the recipe whose repeats keep more value).
func TestDataMultiplier(t *testing.T) {
	const k = 3
	pa := []float64{1.69, 406.4, 410.7, 0.34, 0.28}
	pb := append([]float64(nil), pa...)
	pb[2] *= math.Pow(k, -pb[4])
	for _, o := range []Obs{{N: 1e8, D: 2e9}, {N: 1e10, D: 1e11}, {N: 1e9, D: 1e13}} {
		if m, db := dataMultiplierAt(Chinchilla, pa, pb, o); math.Abs(m-k) > 1e-9*k {
			t.Errorf("chinchilla at N=%g D=%g: m = %.12g (D_B %g), want %d", o.N, o.D, m, db, k)
		}
	}
	da := datablationsParams(5, 3)
	db := datablationsParams(20, 3)
	u := 1e9
	if m, _ := dataMultiplierAt(DataConstrained, da, db, Obs{N: 1e8, D: u, U: u}); math.Abs(m-1) > 1e-9 {
		t.Errorf("at one epoch: m = %.12g, want 1", m)
	}
	if m, _ := dataMultiplierAt(DataConstrained, da, db, Obs{N: 1e8, D: 16 * u, U: u}); !(m > 1) {
		t.Errorf("at 16 epochs: m = %g, want above 1 for R_D* 20 over 5", m)
	}
	// Past its saturation the recipe whose repeats are worth less cannot
	// reach the other's loss at all.
	if m, dB := dataMultiplierAt(DataConstrained, db, da, Obs{N: 1e8, D: 200 * u, U: u}); m != 0 || !math.IsInf(dB, 1) {
		t.Errorf("B saturates above A's loss: m = %g, D_B = %g; want 0 and +Inf", m, dB)
	}
	if _, err := ComputeMultiplier(&Fit{Law: Power, Params: []float64{2, 5, 0.4}}, &Fit{Law: Power, Params: []float64{2, 4, 0.4}},
		MultiplierOptions{Data: []Obs{{N: 1, D: 1}}}); err == nil || !strings.Contains(err.Error(), "chinchilla or datablations") {
		t.Errorf("data multiplier of a power law: %v", err)
	}
}
