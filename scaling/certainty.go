package scaling

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Quantity is a number derived from a law's natural parameters: a
// parameter, a prediction, an allocation.
type Quantity func(p []float64) float64

// ParamQuantity is the natural parameter name of f's law.
func ParamQuantity(f *Fit, name string) (Quantity, error) {
	j := indexOf(f.Names, name)
	if j < 0 {
		return nil, fmt.Errorf("law %s has no parameter %q (it has %v)", f.Law.Name(), name, f.Names)
	}
	if f.Fixed[j] {
		return nil, fmt.Errorf("%s is fixed: its interval has no width to narrow", name)
	}
	return func(p []float64) float64 { return p[j] }, nil
}

// PredictionQuantity is f's predicted loss at o.
func PredictionQuantity(f *Fit, o Obs) Quantity {
	return func(p []float64) float64 { return f.Law.Predict(p, o) }
}

// CostOptions configure CostOfCertainty.
type CostOptions struct {
	// Candidates are the runs that may be added (their inputs; Loss is
	// ignored). A candidate may be chosen more than once (another seed).
	Candidates []Obs
	// Cost is the price of a run (default its scale: X, or 6ND for the
	// Chinchilla laws).
	Cost func(Obs) float64
	// Target is the interval width to reach, in the quantity's units.
	Target float64
	// MaxRuns bounds the runs added (default 64).
	MaxRuns int
	// Level is the interval's coverage (default 0.95).
	Level float64
}

// CostPlan is the cheapest set of added runs the greedy search found.
type CostPlan struct {
	// Width is the quantity's Wald interval width now.
	Width float64
	// Added are the runs chosen, in order, Widths the width after each,
	// and Cost their total price.
	Added  []Obs
	Widths []float64
	Cost   float64
	// Reached is true when the last width is at most the target.
	Reached bool
	// Recipes, for MultiplierCost, says which recipe (0: the first, 1:
	// the second) each added run is for.
	Recipes []int
}

// ByRecipe splits a two-recipe plan's added runs (MultiplierCost,
// CrossingCost) into the first recipe's and the second's.
func (p *CostPlan) ByRecipe() (first, second []Obs) {
	for i, o := range p.Added {
		if p.Recipes[i] == 0 {
			first = append(first, o)
		} else {
			second = append(second, o)
		}
	}
	return first, second
}

// prepare checks the options, sets MaxRuns' default and returns the cost
// of a run.
func (o *CostOptions) prepare(law Law) (func(Obs) float64, error) {
	if len(o.Candidates) == 0 {
		return nil, errors.New("cost of certainty: no candidate runs to add")
	}
	if !(o.Target > 0) {
		return nil, fmt.Errorf("cost of certainty: the target width must be positive, got %g", o.Target)
	}
	if o.MaxRuns <= 0 {
		o.MaxRuns = 64
	}
	cost := o.Cost
	if cost == nil {
		cost = func(ob Obs) float64 { return Scale(law, ob) }
	}
	for i, cand := range o.Candidates {
		if c := cost(cand); !(c > 0) {
			return nil, fmt.Errorf("cost of certainty: candidate %d costs %g; costs must be positive", i, c)
		}
	}
	return cost, nil
}

// certainty holds a fit's Fisher information and the gradient of a
// quantity in the free internal parameters.
type certainty struct {
	f     *Fit
	cols  [][]int
	inv   *mat.Dense // inverse information
	grad  *mat.VecDense
	sigma float64
	z     float64
}

func newCertainty(f *Fit, q Quantity, level float64) (*certainty, error) {
	if level <= 0 || level >= 1 {
		level = 0.95
	}
	cols, _ := f.freeColumns()
	k := len(cols)
	info, sigma, err := f.information(cols)
	if err != nil {
		return nil, err
	}
	var inv mat.Dense
	if err := inv.Inverse(info); err != nil {
		return nil, fmt.Errorf("the information matrix is singular: some direction of the parameters is not determined at all (%w)", err)
	}
	// ∂q/∂θ by central differences in the internal parameters.
	grad := mat.NewVecDense(k, nil)
	theta := append([]float64(nil), f.theta...)
	nat := make([]float64, len(theta))
	eval := func() float64 { f.Law.natural(theta, nat); return q(nat) }
	for c, col := range cols {
		h := 1e-6 * math.Max(1, math.Abs(theta[col[0]]))
		for _, j := range col {
			theta[j] += h
		}
		up := eval()
		for _, j := range col {
			theta[j] -= 2 * h
		}
		down := eval()
		for _, j := range col {
			theta[j] += h
		}
		grad.SetVec(c, (up-down)/(2*h))
	}
	z := distuv.UnitNormal.Quantile(1 - (1-level)/2)
	return &certainty{f: f, cols: cols, inv: &inv, grad: grad, sigma: sigma, z: z}, nil
}

// information returns the Fisher information JᵀS⁻²J/σ̂² of f's log
// residuals over the free columns, and σ̂.
func (f *Fit) information(cols [][]int) (*mat.SymDense, float64, error) {
	n, k := len(f.obs), len(cols)
	if k == 0 {
		return nil, 0, fmt.Errorf("every parameter is fixed: there is nothing for the data to determine")
	}
	if n <= k {
		return nil, 0, fmt.Errorf("%d points for %d free parameters leave no residual degrees of freedom", n, k)
	}
	j, r := f.jacobian(f.obs, cols, true)
	var rss float64
	for _, v := range r {
		rss += v * v
	}
	sigma := math.Sqrt(rss / float64(n-k))
	var info mat.SymDense
	info.SymOuterK(1/(sigma*sigma), j.T())
	return &info, sigma, nil
}

// jacobian returns ∂ log L̂ᵢ/∂θ over the free columns for obs, divided by
// each observation's noise scale, and (with resid) the scaled log
// residuals.
func (f *Fit) jacobian(obs []Obs, cols [][]int, resid bool) (*mat.Dense, []float64) {
	n, p := len(obs), f.lay.p
	lp := make([]float64, n)
	jac := make([]float64, n*p)
	f.Law.bind(obs).eval(f.theta, lp, jac)
	j := mat.NewDense(n, len(cols), nil)
	var r []float64
	for i, o := range obs {
		s := 1.0
		if o.Scale > 0 {
			s = o.Scale
		}
		if resid {
			r = append(r, (lp[i]-math.Log(o.Loss))/s)
		}
		for c, col := range cols {
			v := 0.0
			for _, q := range col {
				v += jac[i*p+q]
			}
			j.Set(i, c, v/s)
		}
	}
	return j, r
}

// width is the Wald interval width 2z·√(gᵀI⁻¹g).
func (c *certainty) width() float64 {
	return 2 * c.z * math.Sqrt(math.Max(mat.Inner(c.grad, c.inv, c.grad), 0))
}

// row returns the information row u = jᵀ/σ of a new run at o, with its
// noise scale from the fit's seed-noise model.
func (c *certainty) row(o Obs) *mat.VecDense {
	o.Loss = c.f.Predict(o)
	if nz := c.f.Noise(); nz != nil && nz.Pooled > 0 {
		o.Scale = nz.Relative(o.Loss)
	}
	j, _ := c.f.jacobian([]Obs{o}, c.cols, false)
	u := mat.NewVecDense(len(c.cols), nil)
	for k := range c.cols {
		u.SetVec(k, j.At(0, k)/c.sigma)
	}
	return u
}

// gain returns the drop in gᵀI⁻¹g from adding a run with information row
// u (Sherman–Morrison: (gᵀI⁻¹u)²/(1 + uᵀI⁻¹u)).
func (c *certainty) gain(u *mat.VecDense) float64 {
	var iu mat.VecDense
	iu.MulVec(c.inv, u)
	a := mat.Dot(c.grad, &iu)
	return a * a / (1 + mat.Dot(u, &iu))
}

// add updates the inverse information for a run with row u.
func (c *certainty) add(u *mat.VecDense) {
	var iu mat.VecDense
	iu.MulVec(c.inv, u)
	d := 1 + mat.Dot(u, &iu)
	var outer mat.Dense
	outer.Outer(1/d, &iu, &iu)
	c.inv.Sub(c.inv, &outer)
}

// PredictWidth returns the Wald interval width of q now and after adding
// runs at the inputs of added (their losses are taken from the fit), with
// the noise level of the current residuals: how an interval would shrink
// with more runs, before running them.
func PredictWidth(f *Fit, q Quantity, added []Obs, level float64) (now, after float64, err error) {
	c, err := newCertainty(f, q, level)
	if err != nil {
		return 0, 0, err
	}
	now = c.width()
	for _, o := range added {
		c.add(c.row(o))
	}
	return now, c.width(), nil
}

// CostOfCertainty finds, greedily, a cheap set of added runs that narrows
// q's Wald interval to o.Target: each step adds the candidate with the
// largest drop in variance per unit cost, until the target or MaxRuns.
// The greedy choice is not guaranteed cheapest, but the variance drop of
// a design is monotone and its first steps are optimal one at a time.
func CostOfCertainty(f *Fit, q Quantity, o CostOptions) (*CostPlan, error) {
	cost, err := o.prepare(f.Law)
	if err != nil {
		return nil, err
	}
	c, err := newCertainty(f, q, o.Level)
	if err != nil {
		return nil, err
	}
	plan := &CostPlan{Width: c.width()}
	rows := make([]*mat.VecDense, len(o.Candidates))
	for i, cand := range o.Candidates {
		rows[i] = c.row(cand)
	}
	w := plan.Width
	for len(plan.Added) < o.MaxRuns && w > o.Target {
		best, bestV := -1, 0.0
		for i, u := range rows {
			if v := c.gain(u) / cost(o.Candidates[i]); v > bestV {
				best, bestV = i, v
			}
		}
		if best < 0 {
			break
		}
		c.add(rows[best])
		// The information changed: the candidates' gains are recomputed
		// from it on the next step.
		w = c.width()
		plan.Added = append(plan.Added, o.Candidates[best])
		plan.Widths = append(plan.Widths, w)
		plan.Cost += cost(o.Candidates[best])
	}
	plan.Reached = w <= o.Target
	return plan, nil
}

// pairCertainty holds the information of both recipes and the gradients
// of a quantity of the two (the multiplier m(x), the crossing) in each
// one's parameters: the recipes are fitted to independent runs, so the
// variances add.
type pairCertainty struct{ a, b *certainty }

func newMultiplierCertainty(fa, fb *Fit, x, level float64) (*pairCertainty, error) {
	if fa.Law != fb.Law {
		return nil, fmt.Errorf("the recipes are fitted with different laws (%s, %s)", fa.Law.Name(), fb.Law.Name())
	}
	if m, _ := multiplierAt(fa.Law, fa.Params, fb.Params, x); m == 0 || math.IsInf(m, 0) {
		return nil, fmt.Errorf("the multiplier at %g is %g: it has no finite interval to narrow", x, m)
	}
	ca, err := newCertainty(fa, func(p []float64) float64 { m, _ := multiplierAt(fa.Law, p, fb.Params, x); return m }, level)
	if err != nil {
		return nil, fmt.Errorf("first recipe: %w", err)
	}
	cb, err := newCertainty(fb, func(p []float64) float64 { m, _ := multiplierAt(fa.Law, fa.Params, p, x); return m }, level)
	if err != nil {
		return nil, fmt.Errorf("second recipe: %w", err)
	}
	return &pairCertainty{a: ca, b: cb}, nil
}

func (c *pairCertainty) width() float64 {
	wa, wb := c.a.width(), c.b.width()
	return math.Sqrt(wa*wa + wb*wb)
}

// PredictMultiplierWidth returns the Wald width of the compute multiplier
// m(x) of fb over fa now and after adding runs addA to the first recipe
// and addB to the second.
func PredictMultiplierWidth(fa, fb *Fit, x float64, addA, addB []Obs, level float64) (now, after float64, err error) {
	c, err := newMultiplierCertainty(fa, fb, x, level)
	if err != nil {
		return 0, 0, err
	}
	now = c.width()
	for _, o := range addA {
		c.a.add(c.a.row(o))
	}
	for _, o := range addB {
		c.b.add(c.b.row(o))
	}
	return now, c.width(), nil
}

// MultiplierCost is CostOfCertainty for the compute multiplier m(x): each
// step adds the candidate run, to whichever recipe, with the largest drop
// in m's variance per unit cost. CostPlan.Recipes says which recipe (0 or
// 1) each added run is for.
func MultiplierCost(fa, fb *Fit, x float64, o CostOptions) (*CostPlan, error) {
	cost, err := o.prepare(fa.Law)
	if err != nil {
		return nil, err
	}
	c, err := newMultiplierCertainty(fa, fb, x, o.Level)
	if err != nil {
		return nil, err
	}
	return c.cheapest(o, cost, o.Target), nil
}

// cheapest adds, greedily, the candidate run to whichever recipe with the
// largest drop in the quantity's variance per unit cost, until its Wald
// width is at most target or MaxRuns.
func (c *pairCertainty) cheapest(o CostOptions, cost func(Obs) float64, target float64) *CostPlan {
	recipes := [2]*certainty{c.a, c.b}
	rows := [2][]*mat.VecDense{}
	for _, cand := range o.Candidates {
		for r, rc := range recipes {
			rows[r] = append(rows[r], rc.row(cand))
		}
	}
	plan := &CostPlan{Width: c.width()}
	w := plan.Width
	for len(plan.Added) < o.MaxRuns && w > target {
		bestR, best, bestV := -1, -1, 0.0
		for r, rc := range recipes {
			for i, u := range rows[r] {
				if v := rc.gain(u) / cost(o.Candidates[i]); v > bestV {
					bestR, best, bestV = r, i, v
				}
			}
		}
		if best < 0 {
			break
		}
		recipes[bestR].add(rows[bestR][best])
		w = c.width()
		plan.Added = append(plan.Added, o.Candidates[best])
		plan.Recipes = append(plan.Recipes, bestR)
		plan.Widths = append(plan.Widths, w)
		plan.Cost += cost(o.Candidates[best])
	}
	plan.Reached = w <= target
	return plan
}

// newCrossingCertainty is the certainty of log x*, x* the crossing of the
// recipes' curves at x0. For each recipe the quantity is the crossing
// linearised at x0, log x0 − (L_A(x0) − L_B(x0))/s with s = ∂(L_A − L_B)/∂log x
// at x0 and the other recipe held at its fit: one Newton step from x0,
// whose gradient is the implicit function theorem's ∂log x*/∂θ =
// −(∂(L_A − L_B)/∂θ)/s.
func newCrossingCertainty(fa, fb *Fit, x0, level float64) (*pairCertainty, error) {
	if fa.Law != fb.Law {
		return nil, fmt.Errorf("the recipes are fitted with different laws (%s, %s)", fa.Law.Name(), fb.Law.Name())
	}
	if !(x0 > 0) || math.IsInf(x0, 0) {
		return nil, fmt.Errorf("the crossing %g is not a positive scale", x0)
	}
	ca, cb := CurveOf(fa.Law, fa.Params), CurveOf(fb.Law, fb.Params)
	const h = 1e-4
	gap := func(lx float64) float64 { x := math.Exp(lx); return ca(x) - cb(x) }
	lx := math.Log(x0)
	slope := (gap(lx+h) - gap(lx-h)) / (2 * h)
	if !(math.Abs(slope) > 0) || math.IsInf(slope, 0) {
		return nil, fmt.Errorf("the curves touch at %g without crossing: the crossing has no Wald interval", x0)
	}
	qa := func(p []float64) float64 { return lx - (CurveOf(fa.Law, p)(x0)-cb(x0))/slope }
	qb := func(p []float64) float64 { return lx - (ca(x0)-CurveOf(fb.Law, p)(x0))/slope }
	a, err := newCertainty(fa, qa, level)
	if err != nil {
		return nil, fmt.Errorf("first recipe: %w", err)
	}
	b, err := newCertainty(fb, qb, level)
	if err != nil {
		return nil, fmt.Errorf("second recipe: %w", err)
	}
	return &pairCertainty{a: a, b: b}, nil
}

// PredictCrossingRatio returns the ratio hi/lo of the Wald interval of the
// recipes' crossing at x0 (exp of the width of log x*'s) now and after
// adding runs addA to the first recipe and addB to the second.
func PredictCrossingRatio(fa, fb *Fit, x0 float64, addA, addB []Obs, level float64) (now, after float64, err error) {
	c, err := newCrossingCertainty(fa, fb, x0, level)
	if err != nil {
		return 0, 0, err
	}
	now = math.Exp(c.width())
	for _, o := range addA {
		c.a.add(c.a.row(o))
	}
	for _, o := range addB {
		c.b.add(c.b.row(o))
	}
	return now, math.Exp(c.width()), nil
}

// CrossingCost is CostOfCertainty for the crossing x0 of the recipes'
// curves: o.Target is the ratio hi/lo of its Wald interval to reach (above
// 1), and the plan's Width and Widths are such ratios. Each step adds the
// candidate run, to whichever recipe, with the largest drop in the
// variance of log x* per unit cost.
func CrossingCost(fa, fb *Fit, x0 float64, o CostOptions) (*CostPlan, error) {
	if !(o.Target > 1) || math.IsInf(o.Target, 0) {
		return nil, fmt.Errorf("cost of certainty: the target ratio of the crossing's interval must be above 1, such as 1.5, got %g", o.Target)
	}
	cost, err := o.prepare(fa.Law)
	if err != nil {
		return nil, err
	}
	c, err := newCrossingCertainty(fa, fb, x0, o.Level)
	if err != nil {
		return nil, err
	}
	plan := c.cheapest(o, cost, math.Log(o.Target))
	plan.Width = math.Exp(plan.Width)
	for i, w := range plan.Widths {
		plan.Widths[i] = math.Exp(w)
	}
	return plan, nil
}
