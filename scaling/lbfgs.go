package scaling

import "math"

// Settings control one local minimisation by L-BFGS.
//
// Both stopping tests are relative to the objective's own scale. SciPy's
// L-BFGS-B divides the decrease by max(|f|, 1), which turns the test
// absolute for a summed Huber objective near 1e-3 and stops next to the
// optimum (Besiroglu et al. 2024); scaling the objective by any constant
// leaves these tests, and so the answer, unchanged.
type Settings struct {
	// FTol stops when (f_k − f_{k+1}) ≤ FTol·max(|f_k|, |f_{k+1}|).
	FTol float64
	// GTol stops when max_i |∂f/∂θ_i| ≤ GTol·|f|.
	GTol float64
	// MaxIter bounds the iterations of one start.
	MaxIter int
	// Memory is the number of correction pairs kept.
	Memory int
}

// DefaultSettings are tight enough to land on the optimum of the Huber
// objectives to about 1e-12 relative.
var DefaultSettings = Settings{FTol: 1e-12, GTol: 1e-11, MaxIter: 3000, Memory: 20}

func (s Settings) withDefaults() Settings {
	d := DefaultSettings
	if s.FTol > 0 {
		d.FTol = s.FTol
	}
	if s.GTol > 0 {
		d.GTol = s.GTol
	}
	if s.MaxIter > 0 {
		d.MaxIter = s.MaxIter
	}
	if s.Memory > 0 {
		d.Memory = s.Memory
	}
	return d
}

// Status says why a minimisation stopped.
type Status int

// The stopping reasons.
const (
	// Converged: a relative tolerance was met.
	Converged Status = iota
	// NoProgress: the line search found no lower point along a descent
	// direction; at a kink of the Huber objective this is the optimum.
	NoProgress
	// IterationLimit: MaxIter was reached.
	IterationLimit
	// Failed: the objective was not finite at the start.
	Failed
)

// String names the status as fit reports count it.
func (s Status) String() string {
	switch s {
	case Converged:
		return "converged"
	case NoProgress:
		return "no-progress"
	case IterationLimit:
		return "iteration-limit"
	}
	return "failed"
}

type optResult struct {
	f      float64
	iters  int
	evals  int
	status Status
}

// objFunc returns f(x) and writes ∇f(x) into g.
type objFunc func(x, g []float64) float64

// lbfgs holds one worker's reusable buffers, so a multi-start run makes no
// allocations per start.
type lbfgs struct {
	n, m      int
	s, y      [][]float64
	rho, a    []float64
	head, cnt int
	g, d      []float64
	xn, gn    []float64
	xt, gt    []float64
	evals     int
}

func newLBFGS(n, m int) *lbfgs {
	w := &lbfgs{n: n, m: m, rho: make([]float64, m), a: make([]float64, m)}
	w.s, w.y = make([][]float64, m), make([][]float64, m)
	for i := range m {
		w.s[i], w.y[i] = make([]float64, n), make([]float64, n)
	}
	w.g, w.d = make([]float64, n), make([]float64, n)
	w.xn, w.gn = make([]float64, n), make([]float64, n)
	w.xt, w.gt = make([]float64, n), make([]float64, n)
	return w
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

func maxAbs(a []float64) float64 {
	m := 0.0
	for _, v := range a {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// direction sets d = −H·g by the two-loop recursion.
func (w *lbfgs) direction() {
	copy(w.d, w.g)
	for i := range w.d {
		w.d[i] = -w.d[i]
	}
	if w.cnt == 0 {
		return
	}
	for k := 0; k < w.cnt; k++ {
		j := (w.head - 1 - k + w.m) % w.m
		w.a[j] = w.rho[j] * dot(w.s[j], w.d)
		for i := range w.d {
			w.d[i] -= w.a[j] * w.y[j][i]
		}
	}
	last := (w.head - 1 + w.m) % w.m
	gamma := dot(w.s[last], w.y[last]) / dot(w.y[last], w.y[last])
	for i := range w.d {
		w.d[i] *= gamma
	}
	for k := w.cnt - 1; k >= 0; k-- {
		j := (w.head - 1 - k + w.m) % w.m
		b := w.rho[j] * dot(w.y[j], w.d)
		for i := range w.d {
			w.d[i] += (w.a[j] - b) * w.s[j][i]
		}
	}
}

// memory is a snapshot of L-BFGS correction pairs, oldest first.
type memory struct {
	s, y [][]float64
	rho  []float64
}

// snapshot returns the current correction pairs. The pairs share one
// backing array, so a snapshot costs four allocations whatever its size.
func (w *lbfgs) snapshot() *memory {
	flat := make([]float64, 2*w.cnt*w.n)
	m := &memory{s: make([][]float64, w.cnt), y: make([][]float64, w.cnt), rho: make([]float64, w.cnt)}
	for k := range w.cnt {
		j := (w.head - w.cnt + k + w.m) % w.m
		m.s[k] = flat[2*k*w.n : (2*k+1)*w.n : (2*k+1)*w.n]
		m.y[k] = flat[(2*k+1)*w.n : (2*k+2)*w.n : (2*k+2)*w.n]
		copy(m.s[k], w.s[j])
		copy(m.y[k], w.y[j])
		m.rho[k] = w.rho[j]
	}
	return m
}

// minimize runs L-BFGS from x, leaving the best point found in x.
func (w *lbfgs) minimize(fg objFunc, x []float64, set Settings) optResult {
	return w.minimizeWith(fg, x, set, nil)
}

// minimizeWith runs L-BFGS from x with its curvature memory seeded from
// mem (nil: empty), which lets a refit on resampled data take near-Newton
// steps from its first iteration.
func (w *lbfgs) minimizeWith(fg objFunc, x []float64, set Settings, mem *memory) optResult {
	w.cnt, w.head, w.evals = 0, 0, 1
	if mem != nil {
		for k := range mem.s {
			if w.cnt == w.m {
				break
			}
			copy(w.s[w.head], mem.s[k])
			copy(w.y[w.head], mem.y[k])
			w.rho[w.head] = mem.rho[k]
			w.head = (w.head + 1) % w.m
			w.cnt++
		}
	}
	f := fg(x, w.g)
	if !finite(f) {
		return optResult{f: math.Inf(1), evals: 1, status: Failed}
	}
	res := optResult{status: IterationLimit}
	for it := 0; it < set.MaxIter; it++ {
		res.iters = it
		if maxAbs(w.g) <= set.GTol*math.Abs(f) {
			res.status = Converged
			break
		}
		w.direction()
		dg := dot(w.g, w.d)
		if !(dg < 0) {
			w.cnt = 0
			w.direction()
			dg = dot(w.g, w.d)
		}
		t0 := 1.0
		if w.cnt == 0 {
			t0 = 1 / math.Sqrt(dot(w.g, w.g))
		}
		fn, ok := w.lineSearch(fg, x, f, dg, t0)
		if !ok && w.cnt > 0 {
			// Retry once along steepest descent with a fresh memory.
			w.cnt = 0
			w.direction()
			dg = dot(w.g, w.d)
			fn, ok = w.lineSearch(fg, x, f, dg, 1/math.Sqrt(dot(w.g, w.g)))
		}
		if !ok {
			res.status = NoProgress
			break
		}
		// Store the correction pair.
		sj, yj := w.s[w.head], w.y[w.head]
		for i := range x {
			sj[i] = w.xn[i] - x[i]
			yj[i] = w.gn[i] - w.g[i]
		}
		if sy := dot(sj, yj); sy > 1e-12*dot(yj, yj) && sy > 0 {
			w.rho[w.head] = 1 / sy
			w.head = (w.head + 1) % w.m
			if w.cnt < w.m {
				w.cnt++
			}
		}
		copy(x, w.xn)
		copy(w.g, w.gn)
		fp := f
		f = fn
		if fp-f <= set.FTol*math.Max(math.Abs(fp), math.Abs(f)) {
			res.status = Converged
			break
		}
	}
	res.f, res.evals = f, w.evals
	return res
}

// lineSearch finds a step t along w.d satisfying the weak Wolfe
// conditions, f(t) ≤ f0 + c1·t·g0 and g(t) ≥ c2·g0, by expansion and
// bracketing with safeguarded cubic interpolation. Weak Wolfe steps keep
// BFGS updates well defined and behave well on the near-L1 Huber objective
// (Lewis and Overton 2013), with fewer evaluations than strong Wolfe. The new
// point is left in w.xn and its gradient in w.gn. It reports false when no
// point with sufficient decrease was found.
func (w *lbfgs) lineSearch(fg objFunc, x []float64, f0, dg0, t float64) (float64, bool) {
	const c1, c2, maxEval = 1e-4, 0.9, 40
	eval := func(t float64) (float64, float64) {
		for i := range x {
			w.xt[i] = x[i] + t*w.d[i]
		}
		w.evals++
		f := fg(w.xt, w.gt)
		if !finite(f) {
			return math.Inf(1), math.NaN()
		}
		return f, dot(w.gt, w.d)
	}
	// best: the lowest point with sufficient decrease, kept in xn/gn.
	bestF, haveBest := math.Inf(1), false
	keep := func(t, f float64) {
		if f < bestF && f <= f0+c1*t*dg0 {
			bestF, haveBest = f, true
			copy(w.xn, w.xt)
			copy(w.gn, w.gt)
		}
	}
	lo, fLo, dLo := 0.0, f0, dg0
	hi, fHi, dHi := math.Inf(1), math.NaN(), math.NaN()
	for n := 0; n < maxEval; n++ {
		ft, dt := eval(t)
		if ft > f0+c1*t*dg0 || !finite(ft) {
			hi, fHi, dHi = t, ft, dt
		} else {
			keep(t, ft)
			if dt >= c2*dg0 {
				return ft, true
			}
			lo, fLo, dLo = t, ft, dt
		}
		if math.IsInf(hi, 1) {
			t *= 4
			continue
		}
		if hi-lo <= 1e-15*hi {
			break
		}
		t = interpolate(lo, hi, fLo, fHi, dLo, dHi)
	}
	if haveBest {
		return bestF, true
	}
	return f0, false
}

// interpolate returns the minimiser of the cubic through (a, fa, da) and
// (b, fb, db), kept at least a tenth of the bracket away from its ends, or
// the midpoint when the cubic is unusable.
func interpolate(a, b, fa, fb, da, db float64) float64 {
	lo, hi := math.Min(a, b), math.Max(a, b)
	mid := (a + b) / 2
	if !finite(fa) || !finite(fb) || !finite(da) || !finite(db) {
		return mid
	}
	d1 := da + db - 3*(fa-fb)/(a-b)
	disc := d1*d1 - da*db
	if disc < 0 {
		return mid
	}
	d2 := math.Sqrt(disc)
	if b < a {
		d2 = -d2
	}
	t := b - (b-a)*(db+d2-d1)/(db-da+2*d2)
	margin := 0.1 * (hi - lo)
	if !finite(t) || t < lo+margin || t > hi-margin {
		return mid
	}
	return t
}
