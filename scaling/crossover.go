package scaling

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Curve is a loss curve along one scale variable.
type Curve func(x float64) float64

// CurveOf returns the curve a fitted law traces along its scale variable at
// natural parameters p: L(x) for the one-dimensional laws, and the
// compute-optimal frontier L*(C) for Chinchilla and DataConstrained.
func CurveOf(law Law, p []float64) Curve {
	switch law {
	case Chinchilla, DataConstrained:
		fr := FrontierOf(p)
		return fr.Loss
	}
	return func(x float64) float64 { return law.Predict(p, Obs{X: x}) }
}

// Roots returns every x in [lo, hi] where c1(x) = c2(x), in increasing
// order: the difference is scanned on a log grid for sign changes and each
// bracket refined by Brent's method. Two saturating power laws meet 0, 1 or
// 2 times.
func Roots(c1, c2 Curve, lo, hi float64) []float64 {
	const steps = 512
	h := func(lx float64) float64 { x := math.Exp(lx); return c1(x) - c2(x) }
	a, b := math.Log(lo), math.Log(hi)
	var roots []float64
	prevX, prevH := a, h(a)
	if prevH == 0 {
		roots = append(roots, lo)
	}
	for i := 1; i <= steps; i++ {
		x := a + (b-a)*float64(i)/steps
		v := h(x)
		switch {
		case v == 0:
			roots = append(roots, math.Exp(x))
		case prevH != 0 && (prevH < 0) != (v < 0):
			roots = append(roots, math.Exp(brent(h, prevX, x, prevH, v)))
		}
		prevX, prevH = x, v
	}
	return roots
}

// brent finds a root of f in [a, b] with f(a), f(b) of opposite signs.
func brent(f func(float64) float64, a, b, fa, fb float64) float64 {
	if math.Abs(fa) < math.Abs(fb) {
		a, b, fa, fb = b, a, fb, fa
	}
	c, fc := a, fa
	d := b - a
	mflag := true
	for range 200 {
		if fb == 0 || math.Abs(b-a) < 1e-14*math.Max(1, math.Abs(b)) {
			return b
		}
		var s float64
		if fa != fc && fb != fc {
			s = a*fb*fc/((fa-fb)*(fa-fc)) + b*fa*fc/((fb-fa)*(fb-fc)) + c*fa*fb/((fc-fa)*(fc-fb))
		} else {
			s = b - fb*(b-a)/(fb-fa)
		}
		lo, hi := (3*a+b)/4, b
		if lo > hi {
			lo, hi = hi, lo
		}
		if s < lo || s > hi ||
			(mflag && math.Abs(s-b) >= math.Abs(b-c)/2) ||
			(!mflag && math.Abs(s-b) >= math.Abs(c-d)/2) {
			s = (a + b) / 2
			mflag = true
		} else {
			mflag = false
		}
		fs := f(s)
		d, c, fc = c, b, fb
		if (fa < 0) != (fs < 0) {
			b, fb = s, fs
		} else {
			a, fa = s, fs
		}
		if math.Abs(fa) < math.Abs(fb) {
			a, b, fa, fb = b, a, fb, fa
		}
	}
	return b
}

// CrossoverOptions configure Crossovers.
type CrossoverOptions struct {
	// Lo and Hi bound the search range of the scale variable.
	Lo, Hi float64
	// Observed is the range the data cover; roots outside it are flagged
	// as extrapolated. Zero values mean the fits' own data range.
	Observed Interval
	// Noise is the seed-noise level of the loss; a crossing whose curves
	// never differ by more than this is flagged as within noise.
	Noise float64
	// Target, when positive, is a scale at which to report P(L1 < L2).
	Target float64
}

// Root is one crossing with its bootstrap interval.
type Root struct {
	// X is the crossing of the fitted curves.
	X float64
	// Interval is the percentile interval of the same-numbered root among
	// bootstrap replicates with as many roots as the point estimate; NaN
	// when either fit is not identified (see Fit.Identified).
	Interval Interval
	// Extrapolated is true when X lies outside the observed range.
	Extrapolated bool
}

// CrossoverResult reports where two fitted curves cross.
type CrossoverResult struct {
	// Roots are the crossings of the point fits.
	Roots []Root
	// PCount[k] is the fraction of paired bootstrap replicates with k
	// crossings in range (k = 0, 1, 2; index 3 counts three or more).
	PCount [4]float64
	// Replicates is the number of paired replicates used.
	Replicates int
	// MaxGap is the largest |L1 − L2| between the outermost roots (over the
	// whole range for a single root); WithinNoise is MaxGap < Noise.
	MaxGap      float64
	WithinNoise bool
	// PFirstBelow is P(L1 < L2) at the target scale, when one was given.
	PFirstBelow float64
}

// Crossovers finds every crossing of the curves of fits f1 and f2 in
// [o.Lo, o.Hi] and, when both fits carry bootstraps, pairs replicate i of
// one with replicate i of the other to estimate the probability of 0, 1 or
// 2 crossings and an interval for each root.
func Crossovers(f1, f2 *Fit, o CrossoverOptions) (*CrossoverResult, error) {
	if !(o.Lo > 0 && o.Hi > o.Lo) {
		return nil, fmt.Errorf("crossover range [%g, %g] must be positive and increasing", o.Lo, o.Hi)
	}
	if o.Observed.Hi == 0 {
		o.Observed = observedRange(f1, f2)
	}
	c1, c2 := CurveOf(f1.Law, f1.Params), CurveOf(f2.Law, f2.Params)
	xs := Roots(c1, c2, o.Lo, o.Hi)
	r := &CrossoverResult{}
	for _, x := range xs {
		r.Roots = append(r.Roots, Root{X: x, Interval: Interval{x, x},
			Extrapolated: x < o.Observed.Lo || x > o.Observed.Hi})
	}
	a, b := o.Lo, o.Hi
	if len(xs) >= 2 {
		a, b = xs[0], xs[len(xs)-1]
	}
	if len(xs) > 0 {
		r.MaxGap = maxGap(c1, c2, a, b)
		r.WithinNoise = r.MaxGap < o.Noise
	}
	if f1.Bootstrap == nil || f2.Bootstrap == nil {
		return r, nil
	}
	b1, b2 := f1.Bootstrap, f2.Bootstrap
	if b1.NotIdentified || b2.NotIdentified {
		// No replicate exists to pair: the crossing has no interval.
		for j := range r.Roots {
			r.Roots[j].Interval = Interval{math.NaN(), math.NaN()}
		}
		return r, nil
	}
	n := min(len(b1.Samples), len(b2.Samples))
	same := make([][]float64, len(xs))
	below := 0
	for i := range n {
		s1, s2 := b1.Samples[i], b2.Samples[i]
		if s1 == nil || s2 == nil {
			continue
		}
		r.Replicates++
		d1, d2 := CurveOf(f1.Law, s1), CurveOf(f2.Law, s2)
		rs := Roots(d1, d2, o.Lo, o.Hi)
		r.PCount[min(len(rs), 3)]++
		if len(rs) == len(xs) {
			for j, x := range rs {
				same[j] = append(same[j], x)
			}
		}
		if o.Target > 0 && d1(o.Target) < d2(o.Target) {
			below++
		}
	}
	if r.Replicates == 0 {
		return r, errors.New("no paired bootstrap replicates")
	}
	for k := range r.PCount {
		r.PCount[k] /= float64(r.Replicates)
	}
	r.PFirstBelow = float64(below) / float64(r.Replicates)
	q := (1 - b1.Level) / 2
	for j := range r.Roots {
		s := sortedCopy(same[j])
		r.Roots[j].Interval = Interval{quantile(s, q), quantile(s, 1-q)}
	}
	return r, nil
}

func maxGap(c1, c2 Curve, a, b float64) float64 {
	la, lb := math.Log(a), math.Log(b)
	m := 0.0
	for i := 0; i <= 256; i++ {
		x := math.Exp(la + (lb-la)*float64(i)/256)
		m = math.Max(m, math.Abs(c1(x)-c2(x)))
	}
	return m
}

// observedRange is the scale range covered by both fits' data: X for the
// one-dimensional laws, 6ND for the Chinchilla laws.
func observedRange(fits ...*Fit) Interval {
	iv := Interval{math.Inf(1), math.Inf(-1)}
	for _, f := range fits {
		for _, o := range f.obs {
			x := o.X
			if f.Law == Chinchilla || f.Law == DataConstrained {
				x = 6 * o.N * o.D
			}
			iv.Lo, iv.Hi = math.Min(iv.Lo, x), math.Max(iv.Hi, x)
		}
	}
	return iv
}

// PowerData draws len(xs) observations of E + A·x^−alpha with log-normal
// noise of standard deviation sigma; it is the generator of the synthetic
// recovery tests, exported for examples and benchmarks.
func PowerData(rng *rand.Rand, p []float64, xs []float64, sigma float64) []Obs {
	obs := make([]Obs, len(xs))
	for i, x := range xs {
		obs[i] = Obs{X: x, Loss: Power.Predict(p, Obs{X: x}) * math.Exp(sigma*rng.NormFloat64())}
	}
	return obs
}
