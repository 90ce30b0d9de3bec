package scaling

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestFastMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var worstExp, worstLog float64
	for i := range 1_000_000 {
		x := (rng.Float64()*2 - 1) * 750
		if i%2 == 0 {
			x = (rng.Float64()*2 - 1) * 5
		}
		if got, want := fastExp(x), math.Exp(x); want != 0 && !math.IsInf(want, 0) {
			worstExp = math.Max(worstExp, math.Abs(got-want)/want)
		}
		y := math.Exp((rng.Float64()*2 - 1) * 740)
		if i%2 == 0 {
			y = 0.5 + 4*rng.Float64()
		}
		got, want := fastLog(y), math.Log(y)
		worstLog = math.Max(worstLog, math.Abs(got-want)/math.Max(1, math.Abs(want)))
	}
	if worstExp > 5e-16 || worstLog > 5e-16 {
		t.Errorf("worst relative error: exp %.3g, log %.3g (absolute below 1)", worstExp, worstLog)
	}
	for _, x := range []float64{0, 1, -1, 700, -700, 709, -745, math.Inf(1), math.Inf(-1)} {
		if got, want := fastExp(x), math.Exp(x); got != want && math.Abs(got-want) > 5e-16*want {
			t.Errorf("fastExp(%g) = %g, want %g", x, got, want)
		}
	}
	for _, x := range []float64{1, 2, math.SmallestNonzeroFloat64, math.MaxFloat64, math.Inf(1)} {
		if got, want := fastLog(x), math.Log(x); got != want && math.Abs(got-want) > 5e-16*math.Max(1, math.Abs(want)) {
			t.Errorf("fastLog(%g) = %g, want %g", x, got, want)
		}
	}
}
