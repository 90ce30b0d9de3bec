package scaling

import (
	"errors"
	"fmt"
	"math"
)

// Frontier is the compute-optimal frontier of a Chinchilla law with C = 6ND
// (Hoffmann et al. 2022): G = (alpha·A/(beta·B))^(1/(alpha+beta)),
// N_opt(C) = G·(C/6)^a and D_opt(C) = G⁻¹·(C/6)^b with a = beta/(alpha+beta),
// b = alpha/(alpha+beta), and L*(C) = E + (A·G^−alpha + B·G^beta)·(C/6)^(−alpha·beta/(alpha+beta)).
type Frontier struct {
	E, A, B, Alpha, Beta float64
}

// FrontierOf returns the frontier of Chinchilla (or DataConstrained, whose
// first five parameters are Chinchilla's) parameters p.
func FrontierOf(p []float64) Frontier {
	return Frontier{E: p[0], A: p[1], B: p[2], Alpha: p[3], Beta: p[4]}
}

// G is the frontier's scale constant.
func (f Frontier) G() float64 {
	return math.Pow(f.Alpha*f.A/(f.Beta*f.B), 1/(f.Alpha+f.Beta))
}

// Exponents returns a and b, the exponents of N_opt and D_opt in C.
func (f Frontier) Exponents() (a, b float64) {
	s := f.Alpha + f.Beta
	return f.Beta / s, f.Alpha / s
}

// Allocation is a split of a compute budget.
type Allocation struct {
	// C is the budget in FLOP, N the parameters, D the tokens.
	C, N, D float64
	// TokensPerParam is D/N; Epochs is D/U for a data-constrained split.
	TokensPerParam, Epochs float64
	// Loss is the law's prediction at (N, D).
	Loss float64
}

// At returns the compute-optimal allocation of budget c.
func (f Frontier) At(c float64) Allocation {
	g := f.G()
	a, b := f.Exponents()
	n := g * math.Pow(c/6, a)
	d := math.Pow(c/6, b) / g
	return Allocation{C: c, N: n, D: d, TokensPerParam: d / n, Loss: f.Loss(c)}
}

// Loss returns L*(c), the loss on the frontier: a single saturating power
// law in compute.
func (f Frontier) Loss(c float64) float64 {
	g := f.G()
	k := f.A*math.Pow(g, -f.Alpha) + f.B*math.Pow(g, f.Beta)
	return f.E + k*math.Pow(c/6, -f.Alpha*f.Beta/(f.Alpha+f.Beta))
}

// AllocationInterval is an allocation with percentile intervals for each
// quantity from bootstrap refits.
type AllocationInterval struct {
	Allocation
	N, D, TokensPerParam, Loss, A Interval
}

// FrontierAt returns fit's compute-optimal allocation at c, with intervals
// when fit has a bootstrap (NaN when the fit is not identified, as no
// refit was run). Fit must be Chinchilla or DataConstrained.
func FrontierAt(fit *Fit, c float64) (AllocationInterval, error) {
	if fit.Law != Chinchilla && fit.Law != DataConstrained {
		return AllocationInterval{}, fmt.Errorf("the compute frontier needs a chinchilla or datablations fit, not %s", fit.Law.Name())
	}
	al := FrontierOf(fit.Params).At(c)
	a, _ := FrontierOf(fit.Params).Exponents()
	out := AllocationInterval{Allocation: al,
		N: Interval{al.N, al.N}, D: Interval{al.D, al.D}, TokensPerParam: Interval{al.TokensPerParam, al.TokensPerParam},
		Loss: Interval{al.Loss, al.Loss}, A: Interval{a, a}}
	b := fit.Bootstrap
	if b == nil {
		return out, nil
	}
	var ns, ds, rs, ls, as []float64
	for _, s := range b.Samples {
		if s == nil {
			continue
		}
		fr := FrontierOf(s)
		x := fr.At(c)
		ea, _ := fr.Exponents()
		ns, ds, rs, ls, as = append(ns, x.N), append(ds, x.D), append(rs, x.TokensPerParam), append(ls, x.Loss), append(as, ea)
	}
	q := (1 - b.Level) / 2
	iv := func(v []float64) Interval {
		s := sortedCopy(v)
		return Interval{quantile(s, q), quantile(s, 1-q)}
	}
	out.N, out.D, out.TokensPerParam, out.Loss, out.A = iv(ns), iv(ds), iv(rs), iv(ls), iv(as)
	return out, nil
}

// DataConstrainedOptimum returns the allocation of budget c that minimises
// the DataConstrained law with natural parameters p when only u unique
// tokens exist: a one-dimensional search over log N with D = c/(6N), as
// in Muennighoff et al.'s README.
func DataConstrainedOptimum(p []float64, c, u float64) (Allocation, error) {
	if len(p) != 7 {
		return Allocation{}, errors.New("data-constrained allocation needs the 7 datablations parameters")
	}
	if c <= 0 || u <= 0 {
		return Allocation{}, fmt.Errorf("budget %g and unique tokens %g must be positive", c, u)
	}
	loss := func(ln float64) float64 {
		n := math.Exp(ln)
		d := c / (6 * n)
		return DataConstrained.Predict(p, Obs{N: n, D: d, U: math.Min(u, d)})
	}
	// Coarse scan, then golden-section refinement around the best point.
	lo, hi := math.Log(1e3), math.Log(c/6/1e3)
	if hi <= lo {
		return Allocation{}, fmt.Errorf("budget %g is too small", c)
	}
	const steps = 400
	best, bestL := lo, math.Inf(1)
	for i := 0; i <= steps; i++ {
		x := lo + (hi-lo)*float64(i)/steps
		if l := loss(x); l < bestL {
			best, bestL = x, l
		}
	}
	h := (hi - lo) / steps
	x := goldenMin(loss, best-h, best+h, 1e-12)
	n := math.Exp(x)
	d := c / (6 * n)
	return Allocation{C: c, N: n, D: d, TokensPerParam: d / n, Epochs: d / u, Loss: loss(x)}, nil
}

// goldenMin minimises a unimodal f on [a, b] by golden-section search.
func goldenMin(f func(float64) float64, a, b, tol float64) float64 {
	r := (math.Sqrt(5) - 1) / 2
	c, d := b-r*(b-a), a+r*(b-a)
	fc, fd := f(c), f(d)
	for math.Abs(b-a) > tol*math.Max(1, math.Abs(a)) {
		if fc < fd {
			b, d, fd = d, c, fc
			c = b - r*(b-a)
			fc = f(c)
		} else {
			a, c, fc = c, d, fd
			d = a + r*(b-a)
			fd = f(d)
		}
	}
	return (a + b) / 2
}

// RepeatValue returns, for e epochs over the same unique tokens and decay
// constant rdStar, the effective fraction D′/D and the marginal value of one
// more repeated token, dD′/dD = e^(−R_D/R_D*) with R_D = e − 1
// (Muennighoff et al. 2023).
func RepeatValue(rdStar, epochs float64) (fraction, marginal float64) {
	rd := math.Max(epochs-1, 0)
	dp := effective(1, rd, rdStar)
	if math.IsInf(rdStar, 1) {
		return 1, 1
	}
	return dp / epochs, math.Exp(-rd / rdStar)
}
