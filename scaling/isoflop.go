package scaling

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

// IsoFLOPOptions configure IsoFLOPFit.
type IsoFLOPOptions struct {
	// Tolerance is the relative difference in compute within which runs
	// belong to one budget (default 0.1): runs sorted by C = 6ND join the
	// current budget while C ≤ (1 + Tolerance) times its smallest.
	Tolerance float64
	// Resamples is the number of bootstrap replicates (0: none, only the
	// per-budget delta-method standard errors). Level is the coverage of
	// the intervals (default 0.95) and Seed makes them reproducible.
	Resamples int
	Level     float64
	Seed      uint64
	// Noise, when set, is the seed-noise model the replicates draw each
	// run's noise from; without it they resample the relative residuals
	// rᵢ/L̂ᵢ of every used budget's parabola, pooled, centred and rescaled
	// by √(n/(n − 3k)) for n runs in k budgets.
	Noise *Noise
}

// Budget is one compute budget of an IsoFLOP analysis.
type Budget struct {
	// C is the geometric mean compute 6ND of the budget's runs.
	C float64
	// Runs is the number of runs, Sizes the number of distinct N, and
	// Points the runs themselves.
	Runs, Sizes int
	Points      []Obs
	// Coef are the parabola's coefficients L = c₀ + c₁u + c₂u² in
	// u = log N − Center.
	Coef   [3]float64
	Center float64
	// NOpt is the parabola's minimum, DOpt = C/(6·NOpt), LOpt the
	// parabola's loss there.
	NOpt, DOpt, LOpt float64
	// LogNSE is the delta-method standard error of log NOpt from the
	// parabola's least-squares covariance (NaN with no residual degrees of
	// freedom); NOptCI the bootstrap interval, when there is one.
	LogNSE float64
	NOptCI Interval
	// Refused says why the budget was left out of the power law ("" when
	// it is used): too few sizes, a parabola that opens downward, or a
	// minimum at the edge of the sizes tried.
	Refused string
}

// IsoFLOP is Hoffmann et al.'s Approach 2: per-budget minima of loss
// against log N, and power laws through them, N_opt = KN·C^A and
// D_opt = KD·C^B (B = 1 − A, KD = 1/(6·KN), since D = C/(6N)).
type IsoFLOP struct {
	Budgets []Budget
	// Used is the number of budgets the power laws are fitted to.
	Used  int
	A, KN float64
	B, KD float64
	ACI   Interval
	BCI   Interval
	Level float64
	// Replicates counts the bootstrap replicates used; Failed those left
	// out because a used budget's resampled parabola had no interior
	// minimum.
	Replicates, Failed int
	// Expanded is true when the intervals were widened for the residuals'
	// few degrees of freedom (no seed-noise model; see IsoFLOPFit).
	Expanded bool
	samples  [][2]float64 // (log KN, A) per replicate
	q        float64      // lower tail of the intervals' percentiles
}

// ErrEdgeMinimum names the refusal of a budget whose loss is lowest at
// the smallest or the largest size tried, or whose parabola's minimum lies
// outside them: its minimum is not bracketed by the data.
var ErrEdgeMinimum = errors.New("minimum at the edge of the sizes tried")

// IsoFLOPFit groups obs (N and D set) into compute budgets, fits a
// parabola in log N to each budget's losses, refuses budgets whose minimum
// is not bracketed by the sizes tried, and fits log N_opt = log KN +
// A·log C by least squares through the rest. With Resamples, each
// replicate redraws every used budget's losses (from the parabola's
// pooled relative residuals, or from the seed-noise model), refits the
// parabolas and the power law, and the intervals are percentiles,
// expanded for the residuals' degrees of freedom when they carry the
// noise.
func IsoFLOPFit(ctx context.Context, obs []Obs, o IsoFLOPOptions) (*IsoFLOP, error) {
	if err := Validate(Chinchilla, obs); err != nil {
		return nil, err
	}
	if o.Tolerance <= 0 {
		o.Tolerance = 0.1
	}
	if o.Level <= 0 || o.Level >= 1 {
		o.Level = 0.95
	}
	groups := budgetsOf(obs, o.Tolerance)
	r := &IsoFLOP{Level: o.Level}
	var used [][]Obs
	var fits []parabola
	for _, g := range groups {
		b, p := budgetOf(g)
		r.Budgets = append(r.Budgets, b)
		if b.Refused == "" {
			used, fits = append(used, g), append(fits, p)
		}
	}
	r.Used = len(used)
	if r.Used < 2 {
		var why []string
		for _, b := range r.Budgets {
			if b.Refused != "" {
				why = append(why, fmt.Sprintf("C=%.3g: %s", b.C, b.Refused))
			}
		}
		refused := ""
		if len(why) > 0 {
			refused = fmt.Sprintf(" (refused: %s)", strings.Join(why, "; "))
		}
		return r, fmt.Errorf("isoFLOP: %d of %d budgets have an interior minimum and the power law needs two%s; try sizes on both sides of each budget's best run, or a compute tolerance (%g) that separates the budgets",
			r.Used, len(r.Budgets), refused, o.Tolerance)
	}
	lc, ln := make([]float64, 0, r.Used), make([]float64, 0, r.Used)
	for _, b := range r.Budgets {
		if b.Refused == "" {
			lc, ln = append(lc, math.Log(b.C)), append(ln, math.Log(b.NOpt))
		}
	}
	k, a := line(lc, ln)
	r.A, r.KN = a, math.Exp(k)
	r.B, r.KD = 1-a, 1/(6*r.KN)
	if o.Resamples <= 0 {
		return r, nil
	}
	pool := relativeResiduals(fits)
	var as []float64
	perBudget := make([][]float64, r.Used)
	for i := range o.Resamples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rng := rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
		xs := make([]float64, r.Used)
		ok := true
		for j, g := range used {
			p, good := fits[j].redraw(rng, g, o.Noise, pool)
			if !good {
				ok = false
				break
			}
			xs[j] = p
		}
		if !ok {
			r.Failed++
			continue
		}
		kk, aa := line(lc, xs)
		as = append(as, aa)
		r.samples = append(r.samples, [2]float64{kk, aa})
		for j, x := range xs {
			perBudget[j] = append(perBudget[j], x)
		}
	}
	r.Replicates = len(as)
	if r.Replicates == 0 {
		return r, fmt.Errorf("isoFLOP: every bootstrap replicate lost a budget's interior minimum")
	}
	q := (1 - o.Level) / 2
	if o.Noise == nil && pool != nil {
		// The residuals estimate the noise with few degrees of freedom,
		// which the percentile interval ignores: expand it as Hesterberg
		// (2015) does, taking the percentiles at α′ with
		// z(1 − α′/2) = t_ν(1 − α/2), ν the residuals' degrees of freedom.
		nu := float64(len(pool) - 3*len(fits))
		t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: nu}.Quantile(1 - q)
		q = 1 - distuv.UnitNormal.CDF(t)
		r.Expanded = true
	}
	s := sortedCopy(as)
	r.q = q
	r.ACI = Interval{quantile(s, q), quantile(s, 1-q)}
	r.BCI = Interval{1 - r.ACI.Hi, 1 - r.ACI.Lo}
	j := 0
	for bi := range r.Budgets {
		if r.Budgets[bi].Refused != "" {
			continue
		}
		v := sortedCopy(perBudget[j])
		r.Budgets[bi].NOptCI = Interval{math.Exp(quantile(v, q)), math.Exp(quantile(v, 1-q))}
		j++
	}
	return r, nil
}

// At returns N_opt and D_opt at compute c, with percentile intervals over
// the replicates (equal to the values without a bootstrap).
func (r *IsoFLOP) At(c float64) (n, d float64, nCI, dCI Interval) {
	return allocationAt(c, r.KN, r.A, r.samples, r.q)
}

// allocationAt is N_opt = kn·c^a and D_opt = c/(6·N_opt) with percentile
// intervals (lower tail q) over replicates' (log kn, a) in samples; the
// intervals are the values when there are none.
func allocationAt(c, kn, a float64, samples [][2]float64, q float64) (n, d float64, nCI, dCI Interval) {
	n = kn * math.Pow(c, a)
	d = c / (6 * n)
	nCI, dCI = Interval{n, n}, Interval{d, d}
	if len(samples) == 0 {
		return
	}
	ns := make([]float64, len(samples))
	for i, s := range samples {
		ns[i] = s[0] + s[1]*math.Log(c)
	}
	v := sortedCopy(ns)
	nCI = Interval{math.Exp(quantile(v, q)), math.Exp(quantile(v, 1-q))}
	dCI = Interval{c / (6 * nCI.Hi), c / (6 * nCI.Lo)}
	return
}

// budgetsOf sorts obs by compute and splits them where C exceeds the
// budget's smallest by more than the tolerance.
func budgetsOf(obs []Obs, tol float64) [][]Obs {
	s := append([]Obs(nil), obs...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].N*s[i].D < s[j].N*s[j].D })
	var out [][]Obs
	start := 0
	for i := 1; i <= len(s); i++ {
		if i == len(s) || s[i].N*s[i].D > (1+tol)*s[start].N*s[start].D {
			out = append(out, s[start:i])
			start = i
		}
	}
	return out
}

// parabola is the least-squares fit L = c₀ + c₁u + c₂u², u = log N − m.
type parabola struct {
	c      [3]float64
	m      float64
	fit    []float64 // fitted values
	resid  []float64 // residuals
	cov    *mat.SymDense
	lo, hi float64 // range of u
}

// fitParabola fits the parabola to (log N, L) of obs; ok is false when the
// design is singular.
func fitParabola(obs []Obs, m float64) (parabola, bool) {
	n := len(obs)
	x := mat.NewDense(n, 3, nil)
	y := mat.NewVecDense(n, nil)
	p := parabola{m: m, lo: math.Inf(1), hi: math.Inf(-1)}
	for i, o := range obs {
		u := math.Log(o.N) - m
		x.Set(i, 0, 1)
		x.Set(i, 1, u)
		x.Set(i, 2, u*u)
		y.SetVec(i, o.Loss)
		p.lo, p.hi = math.Min(p.lo, u), math.Max(p.hi, u)
	}
	var qr mat.QR
	qr.Factorize(x)
	var beta mat.VecDense
	if err := qr.SolveVecTo(&beta, false, y); err != nil {
		return p, false
	}
	for j := range 3 {
		p.c[j] = beta.AtVec(j)
	}
	var rss float64
	p.fit, p.resid = make([]float64, n), make([]float64, n)
	for i, o := range obs {
		u := math.Log(o.N) - m
		p.fit[i] = p.c[0] + p.c[1]*u + p.c[2]*u*u
		p.resid[i] = o.Loss - p.fit[i]
		rss += p.resid[i] * p.resid[i]
	}
	if dof := n - 3; dof > 0 {
		var xtx mat.SymDense
		xtx.SymOuterK(1, x.T())
		var inv mat.SymDense
		var ch mat.Cholesky
		if ch.Factorize(&xtx) && ch.InverseTo(&inv) == nil {
			inv.ScaleSym(rss/float64(dof), &inv)
			p.cov = &inv
		}
	}
	return p, true
}

// minimum is the parabola's vertex u* = −c₁/(2c₂), and whether the parabola
// opens upward with its vertex inside the sizes fitted.
func (p parabola) minimum() (float64, bool) {
	if !(p.c[2] > 0) {
		return math.NaN(), false
	}
	u := -p.c[1] / (2 * p.c[2])
	return u, u > p.lo && u < p.hi
}

// budgetOf fits one budget's parabola and judges its minimum.
func budgetOf(g []Obs) (Budget, parabola) {
	var lc, m float64
	sizes := map[float64]bool{}
	for _, o := range g {
		lc += math.Log(6 * o.N * o.D)
		m += math.Log(o.N)
		sizes[o.N] = true
	}
	k := float64(len(g))
	b := Budget{C: math.Exp(lc / k), Runs: len(g), Sizes: len(sizes), Points: g, LogNSE: math.NaN()}
	m /= k
	b.Center = m
	if b.Sizes < 3 {
		b.Refused = fmt.Sprintf("%d distinct sizes; a parabola needs 3", b.Sizes)
		return b, parabola{}
	}
	p, ok := fitParabola(g, m)
	if !ok {
		b.Refused = "singular design"
		return b, p
	}
	b.Coef = p.c
	// The observed best run must not be the smallest or the largest size:
	// then the minimum is not bracketed, whatever the parabola says.
	best := 0
	for i, o := range g {
		if o.Loss < g[best].Loss {
			best = i
		}
	}
	u, inside := p.minimum()
	switch {
	case !(p.c[2] > 0):
		b.Refused = "the parabola opens downward: no minimum"
		return b, p
	case math.Log(g[best].N)-m <= p.lo:
		b.Refused = fmt.Sprintf("%v: the best run is the smallest size tried", ErrEdgeMinimum)
		return b, p
	case math.Log(g[best].N)-m >= p.hi:
		b.Refused = fmt.Sprintf("%v: the best run is the largest size tried", ErrEdgeMinimum)
		return b, p
	case !inside:
		b.Refused = fmt.Sprintf("%v: the parabola's minimum lies outside the sizes tried", ErrEdgeMinimum)
		return b, p
	}
	b.NOpt = math.Exp(m + u)
	b.DOpt = b.C / (6 * b.NOpt)
	b.LOpt = p.c[0] + p.c[1]*u + p.c[2]*u*u
	if p.cov != nil {
		// u* = −c₁/(2c₂): ∂u*/∂c₁ = −1/(2c₂), ∂u*/∂c₂ = c₁/(2c₂²).
		g1, g2 := -1/(2*p.c[2]), p.c[1]/(2*p.c[2]*p.c[2])
		v := g1*g1*p.cov.At(1, 1) + 2*g1*g2*p.cov.At(1, 2) + g2*g2*p.cov.At(2, 2)
		b.LogNSE = math.Sqrt(v)
	}
	return b, p
}

// relativeResiduals pools the parabolas' relative residuals rᵢ/L̂ᵢ,
// centred and rescaled by √(n/(n − 3k)) for n runs in k parabolas, so
// their spread estimates the noise; nil when no degrees of freedom are
// left.
func relativeResiduals(fits []parabola) []float64 {
	var pool []float64
	for _, p := range fits {
		for i, r := range p.resid {
			pool = append(pool, r/p.fit[i])
		}
	}
	dof := len(pool) - 3*len(fits)
	if dof <= 0 {
		return nil
	}
	mean := 0.0
	for _, r := range pool {
		mean += r
	}
	mean /= float64(len(pool))
	f := math.Sqrt(float64(len(pool)) / float64(dof))
	for i := range pool {
		pool[i] = (pool[i] - mean) * f
	}
	return pool
}

// redraw draws one replicate of the budget's losses around the parabola's
// fitted values, with noise from nz or else from the pooled relative
// residuals, and returns the refitted minimum's log N; ok is false when
// the replicate's parabola has no interior minimum.
func (p parabola) redraw(rng *rand.Rand, g []Obs, nz *Noise, pool []float64) (float64, bool) {
	rep := make([]Obs, len(g))
	for i, o := range g {
		o.Loss = p.fit[i]
		switch {
		case nz != nil:
			o.Loss *= math.Exp(nz.At(o.Loss) * rng.NormFloat64())
		case pool != nil:
			o.Loss *= 1 + pool[rng.IntN(len(pool))]
		}
		rep[i] = o
	}
	q, ok := fitParabola(rep, p.m)
	if !ok {
		return 0, false
	}
	u, inside := q.minimum()
	if !inside {
		return 0, false
	}
	return p.m + u, true
}

// line fits y = k + a·x by least squares.
func line(x, y []float64) (k, a float64) {
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	n := float64(len(x))
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for i := range x {
		sxx += (x[i] - mx) * (x[i] - mx)
		sxy += (x[i] - mx) * (y[i] - my)
	}
	a = sxy / sxx
	return my - a*mx, a
}
