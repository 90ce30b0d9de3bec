package scaling

import (
	"math"
	"math/rand/v2"
	"testing"
)

// datablationsBase are Muennighoff et al.'s C4 constants (log-space a, b,
// e, alpha = beta from their notebook) in natural units.
var datablationsBase = map[string]float64{
	"E":     math.Exp(0.6254804),
	"A":     math.Exp(6.255414),
	"B":     math.Exp(7.3049974),
	"alpha": 0.3526596,
	"beta":  0.3526596,
}

func datablationsParams(rd, rn float64) []float64 {
	b := datablationsBase
	return []float64{b["E"], b["A"], b["B"], b["alpha"], b["beta"], rd, rn}
}

// TestDataConstrainedReadmeValue checks the law against the value in the
// datablations README: L(N=6.34e9, D=242e9, U_D=25e9) = 2.22564408899845.
func TestDataConstrainedReadmeValue(t *testing.T) {
	p := datablationsParams(15.387756, 5.309743)
	got := DataConstrained.Predict(p, Obs{N: 6.34e9, D: 242e9, U: 25e9})
	if math.Abs(got-2.22564408899845) > 1e-9 {
		t.Fatalf("L = %.14f, want 2.22564408899845", got)
	}
}

// TestGradients compares every law's analytic Jacobian with central
// differences at random parameters and points, including points where the
// data-constrained law's U_N = N_opt(U_D) branch is active.
func TestGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var obs []Obs
	for range 20 {
		n := math.Exp(18 + 6*rng.Float64())
		u := math.Exp(20 + 5*rng.Float64())
		obs = append(obs, Obs{X: n, N: n, D: u * (1 + 50*rng.Float64()), U: u, Loss: 3})
	}
	for _, law := range []Law{Power, Chinchilla, DataConstrained} {
		t.Run(law.Name(), func(t *testing.T) {
			p := len(law.Params())
			theta := make([]float64, p)
			nat := []float64{1.8, 400, 1500, 0.33, 0.37, 12, 4}
			law.internal(nat[:p], theta)
			m := law.bind(obs)
			n := len(obs)
			lp, jac := make([]float64, n), make([]float64, n*p)
			m.eval(theta, lp, jac)
			lpp, lpm := make([]float64, n), make([]float64, n)
			for j := range p {
				h := 1e-6
				tp := append([]float64(nil), theta...)
				tm := append([]float64(nil), theta...)
				tp[j] += h
				tm[j] -= h
				m.eval(tp, lpp, nil)
				m.eval(tm, lpm, nil)
				for i := range n {
					num := (lpp[i] - lpm[i]) / (2 * h)
					if d := math.Abs(num - jac[i*p+j]); d > 1e-6*math.Max(1, math.Abs(num)) {
						t.Errorf("point %d, param %s: analytic %.9g, numeric %.9g", i, law.Params()[j], jac[i*p+j], num)
					}
				}
			}
			// log-prediction agrees with Predict.
			for i, o := range obs {
				if got, want := math.Exp(lp[i]), law.Predict(nat[:p], o); math.Abs(got-want) > 1e-9*want {
					t.Errorf("point %d: exp(lp) = %g, Predict = %g", i, got, want)
				}
			}
		})
	}
}
