package scaling

import (
	"math"
	"testing"
)

func TestFrontier(t *testing.T) {
	epoch := []float64{1.8169, 482.01, 2085.43, 0.3478, 0.3658}
	// Hoffmann's unrounded log-space values, from Besiroglu et al.'s notebook.
	hoff := []float64{math.Exp(0.5267228), math.Exp(6.0073404), math.Exp(6.0179186), 0.33917084, 0.2849083}
	const c = 5.88e23 // 6·70e9·1.4e12
	tests := []struct {
		name       string
		p          []float64
		n, d, dn   float64
		a          float64
		tolN, tolR float64
	}{
		{"Epoch MLE", epoch, 7.31e10, 1.34e12, 18.3, 0.513, 0.02, 0.02},
		{"Hoffmann", hoff, math.NaN(), math.NaN(), 59, 0.457, 0, 0.03},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fr := FrontierOf(tc.p)
			al := fr.At(c)
			if !math.IsNaN(tc.n) && (math.Abs(al.N/tc.n-1) > tc.tolN || math.Abs(al.D/tc.d-1) > tc.tolN) {
				t.Errorf("N_opt %.3g, D_opt %.3g, want %.3g and %.3g", al.N, al.D, tc.n, tc.d)
			}
			if math.Abs(al.TokensPerParam/tc.dn-1) > tc.tolR {
				t.Errorf("D/N = %.2f, want %.1f", al.TokensPerParam, tc.dn)
			}
			if a, _ := fr.Exponents(); math.Abs(a-tc.a) > 0.005 {
				t.Errorf("a = %.4f, want %.3f", a, tc.a)
			}
			if math.Abs(6*al.N*al.D/c-1) > 1e-12 {
				t.Errorf("6ND = %g, want %g", 6*al.N*al.D, c)
			}
			// L*(C) equals the law at the optimum and is its minimum along
			// the budget.
			l := Chinchilla.Predict(tc.p, Obs{N: al.N, D: al.D})
			if math.Abs(l-al.Loss) > 1e-12 {
				t.Errorf("L*(C) = %.15g, law at optimum %.15g", al.Loss, l)
			}
			for _, f := range []float64{0.9, 1.1} {
				if Chinchilla.Predict(tc.p, Obs{N: al.N * f, D: al.D / f}) < l {
					t.Errorf("moving N by %g lowers the loss", f)
				}
			}
		})
	}
}

// TestDataConstrainedOptimum checks the datablations README's allocation
// at C = 1e22 with 25e9 unique tokens: 2.3734e11 tokens, 7.0224e9 params.
func TestDataConstrainedOptimum(t *testing.T) {
	p := datablationsParams(15.387756, 5.309743)
	al, err := DataConstrainedOptimum(p, 1e22, 25e9)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(al.D/2.3734e11-1) > 0.01 || math.Abs(al.N/7.0224e9-1) > 0.01 {
		t.Errorf("D = %.4g, N = %.4g, want 2.3734e11 and 7.0224e9", al.D, al.N)
	}
	if math.Abs(al.Epochs-9.49) > 0.1 {
		t.Errorf("epochs %.2f, want 9.49", al.Epochs)
	}
}

// TestRepeatValue checks the table in the reference notes for R_D* = 15.39.
func TestRepeatValue(t *testing.T) {
	tests := []struct{ epochs, frac, marginal float64 }{
		{2, 0.98, 0.94}, {4, 0.93, 0.82}, {8, 0.83, 0.64}, {16, 0.66, 0.38}, {40, 0.38, 0.08},
	}
	for _, tc := range tests {
		f, m := RepeatValue(15.387756, tc.epochs)
		if math.Abs(f-tc.frac) > 0.006 || math.Abs(m-tc.marginal) > 0.006 {
			t.Errorf("%g epochs: D′/D %.3f, marginal %.3f, want %.2f and %.2f", tc.epochs, f, m, tc.frac, tc.marginal)
		}
	}
}
