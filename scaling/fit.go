package scaling

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
)

// Options configure a fit. The zero value fits every parameter with the
// summed Huber loss (δ = 1e-3) from the law's grid of starts.
type Options struct {
	// Loss is the objective; the zero value is HuberLog with DefaultDelta.
	Loss Loss
	// Fixed holds natural parameters at given values, by name (E, A, B,
	// alpha, beta, RD_star, RN_star). RD_star or RN_star may be +Inf,
	// which removes that decay from the DataConstrained law.
	Fixed map[string]float64
	// TieExponents fits alpha = beta as one parameter (Muennighoff et al.'s
	// base fit).
	TieExponents bool
	// Starts, when set, are the natural-parameter vectors (full length,
	// fixed entries ignored) to start from instead of the grid.
	Starts [][]float64
	// RandomStarts, when positive, draws that many starts uniformly from
	// the box spanned by the law's grid instead of using the grid itself.
	// The grid is also replaced by 2,000 random starts when its Cartesian
	// product over the free parameters exceeds MaxGridStarts.
	RandomStarts int
	// MaxGridStarts bounds the grid (default 5,000, which keeps the 4,500-point Chinchilla grid).
	MaxGridStarts int
	// Seed makes random starts, bootstrap resamples and prediction
	// intervals reproducible.
	Seed uint64
	// Workers is the number of starts run at once (default GOMAXPROCS).
	Workers int
	// Settings control each local minimisation.
	Settings Settings
	// Screen is the relative tolerance of the screening pass over all
	// starts (default 1e-5; negative: no screening, every start runs to
	// Settings' tolerances). PolishWithin is the relative distance to the
	// best screened objective within which a start is then converged fully
	// (default 1: every start within twice the best objective).
	Screen, PolishWithin float64
	// AgreeTol is the relative distance to the best objective within which
	// a start counts as agreeing (default 1e-9).
	AgreeTol float64
	// Noise, when set, is the seed-noise model of the runs (see SeedNoise):
	// predictions then also carry a new seed's interval drawn from it
	// (Prediction.Seed). Weighting is separate: pass the observations
	// through Noise.Weigh.
	Noise *Noise
}

// Fit is a fitted law.
type Fit struct {
	// Law is the law fitted.
	Law Law
	// Loss is the objective minimised.
	Loss Loss
	// Names are the natural parameter names; Params their fitted values.
	Names  []string
	Params []float64
	// Fixed marks parameters held at given values (tied exponents are not
	// fixed).
	Fixed []bool
	// Tied records that beta was tied to alpha.
	Tied bool
	// LogSigma is the fitted log σ of the Huber likelihood (zero for other
	// losses).
	LogSigma float64
	// Objective is the minimised objective.
	Objective float64
	// N is the number of observations, Free the number of free parameters
	// (log σ included).
	N, Free int
	// Starts is the number of starts run, Agree how many reached the best
	// objective within Options.AgreeTol, and Statuses how each stopped
	// ("screened": stopped by the screening pass, not converged further).
	Starts, Agree int
	Statuses      map[string]int
	// Optima are the distinct local optima the starts reached, best first
	// (at most five). Near-equal optima far apart in parameters mean the
	// data do not pin the parameters down.
	Optima []Optimum
	// Goodness summarises the fit on the observations.
	Goodness Goodness
	// Residuals lists each observation's fitted value and residuals.
	Residuals []Residual
	// Bootstrap is set by Bootstrap.
	Bootstrap *BootstrapResult
	// Warnings explain why a parameter may not be identified.
	Warnings []string

	obs   []Obs
	theta []float64 // full internal vector at the optimum
	mem   *memory   // curvature at the optimum, to seed refits
	opts  Options
	lay   layout
}

// Optimum is one local optimum reached by the starts.
type Optimum struct {
	// Params are its natural parameters, Objective its objective value.
	Params    []float64
	Objective float64
	// Starts is how many starts reached it (within Options.AgreeTol).
	Starts int
}

// Param returns the named natural parameter and whether the law has it.
func (f *Fit) Param(name string) (float64, bool) {
	for i, n := range f.Names {
		if n == name {
			return f.Params[i], true
		}
	}
	return 0, false
}

// Predict returns the fitted law's prediction for o.
func (f *Fit) Predict(o Obs) float64 { return f.Law.Predict(f.Params, o) }

// Noise returns the seed-noise model the fit was given (Options.Noise),
// nil for none.
func (f *Fit) Noise() *Noise { return f.opts.Noise }

// Obs returns the observations the law was fitted to.
func (f *Fit) Obs() []Obs { return f.obs }

// RowError reports a bad observation; Row is zero-based.
type RowError struct {
	Row   int
	Field string
	Msg   string
}

// Error names the row and field.
func (e *RowError) Error() string {
	return fmt.Sprintf("row %d, %s: %s", e.Row, e.Field, e.Msg)
}

// ErrTooFewPoints is wrapped by errors for fits with fewer observations than
// free parameters.
var ErrTooFewPoints = errors.New("too few points")

// Validate checks that every input the law reads and every loss is finite
// and positive, returning a *RowError per bad value, joined.
func Validate(law Law, obs []Obs) error {
	var errs []error
	for i, o := range obs {
		check := func(field string, v float64) {
			switch {
			case math.IsNaN(v):
				errs = append(errs, &RowError{i, field, "is NaN"})
			case math.IsInf(v, 0):
				errs = append(errs, &RowError{i, field, "is infinite"})
			case v <= 0:
				errs = append(errs, &RowError{i, field, fmt.Sprintf("must be positive, got %g", v)})
			}
		}
		for _, in := range law.Inputs() {
			switch in {
			case "X":
				check("x", o.X)
			case "N":
				check("params", o.N)
			case "D":
				check("tokens", o.D)
			case "U":
				check("unique_tokens", o.U)
			}
		}
		check("loss", o.Loss)
	}
	return errors.Join(errs...)
}

// layout maps the optimiser's free vector z onto the law's internal vector.
type layout struct {
	p, free int
	slot    []int     // slot[j] = index into z, or −1 when fixed
	base    []float64 // fixed internal values
	extra   int       // 1 when the loss adds log σ as z[free−1]
	// centers reparameterise each free log-coefficient against its
	// exponent: the optimiser sees a′ = a − alpha·m, with m the data's mean
	// log scale, so log L̂ depends on (a′, alpha) through
	// a′ − alpha·(log N − m), which decorrelates the two and cuts the
	// iterations of a refit by about 40%.
	centers []center
}

// center pairs a log-coefficient with its exponent and the shift m.
type center struct {
	a, alpha int
	m        float64
}

// centerZ turns a vector holding internal values in the free slots into
// the optimiser's centred vector.
func (l *layout) centerZ(z []float64) {
	for _, c := range l.centers {
		sa := l.slot[c.a]
		if sa < 0 {
			continue
		}
		al := l.base[c.alpha]
		if s := l.slot[c.alpha]; s >= 0 {
			al = z[s]
		}
		z[sa] -= al * c.m
	}
}

// foldGrad turns ∂f/∂θ (gt) into ∂f/∂z (g).
func (l *layout) foldGrad(gt, g []float64) {
	for i := range g {
		g[i] = 0
	}
	for j, s := range l.slot {
		if s >= 0 {
			g[s] += gt[j]
		}
	}
	for _, c := range l.centers {
		if l.slot[c.a] >= 0 && l.slot[c.alpha] >= 0 {
			g[l.slot[c.alpha]] += gt[c.a] * c.m
		}
	}
}

func newLayout(law Law, o Options) (layout, error) {
	names := law.Params()
	p := len(names)
	lay := layout{p: p, slot: make([]int, p), base: make([]float64, p), extra: o.Loss.extra()}
	nat := make([]float64, p)
	for i := range nat {
		nat[i] = 1
	}
	fixed := make([]bool, p)
	var errs []error
	for name, v := range o.Fixed {
		j := indexOf(names, name)
		if j < 0 {
			errs = append(errs, fmt.Errorf("law %s has no parameter %q (it has %v)", law.Name(), name, names))
			continue
		}
		if math.IsNaN(v) || (law.positive()[j] && v <= 0) {
			errs = append(errs, fmt.Errorf("fixed %s = %g is out of range", name, v))
			continue
		}
		nat[j], fixed[j] = v, true
	}
	if err := errors.Join(errs...); err != nil {
		return lay, err
	}
	law.internal(nat, lay.base)
	ia, ib := indexOf(names, "alpha"), indexOf(names, "beta")
	for j := range p {
		switch {
		case fixed[j]:
			lay.slot[j] = -1
		case o.TieExponents && j == ib && ia >= 0:
			if fixed[ia] {
				lay.slot[j] = -1
				lay.base[j] = lay.base[ia]
			} else {
				lay.slot[j] = lay.slot[ia]
			}
		default:
			lay.slot[j] = lay.free
			lay.free++
		}
	}
	if o.TieExponents && ia >= 0 && fixed[ib] && !fixed[ia] {
		return lay, fmt.Errorf("tied exponents: fix alpha, not beta")
	}
	lay.free += lay.extra
	return lay, nil
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// expand writes the internal vector for free vector z into theta.
func (l *layout) expand(z, theta []float64) {
	for j, s := range l.slot {
		if s >= 0 {
			theta[j] = z[s]
		} else {
			theta[j] = l.base[j]
		}
	}
	for _, c := range l.centers {
		if l.slot[c.a] >= 0 {
			theta[c.a] += theta[c.alpha] * c.m
		}
	}
}

// evaluator is one worker's objective over one data set.
type evaluator struct {
	lay     *layout
	mdl     model
	loss    Loss
	ly, y   []float64
	scale   []float64 // per-observation noise scale; nil when all are 1
	inv     []float64 // 1/scale, for the fused kernel; nil with scale
	theta   []float64
	lp, jac []float64
	dr, gt  []float64
}

func newEvaluator(mdl model, lay *layout, loss Loss, obs []Obs) *evaluator {
	n := len(obs)
	e := &evaluator{lay: lay, mdl: mdl, loss: loss,
		ly: make([]float64, n), y: make([]float64, n), theta: make([]float64, lay.p),
		lp: make([]float64, n), jac: make([]float64, n*lay.p), dr: make([]float64, n),
		gt: make([]float64, lay.p)}
	for i, o := range obs {
		e.y[i], e.ly[i] = o.Loss, math.Log(o.Loss)
		if o.Scale > 0 && o.Scale != 1 && e.scale == nil {
			e.scale = make([]float64, n)
			for k := range e.scale {
				e.scale[k] = 1
			}
		}
		if e.scale != nil && o.Scale > 0 {
			e.scale[i] = o.Scale
		}
	}
	if e.scale != nil {
		e.inv = make([]float64, n)
		for i, s := range e.scale {
			e.inv[i] = 1 / s
		}
	}
	return e
}

// fusedHuber is implemented by models with a one-pass Huber objective.
type fusedHuber interface {
	huberFused(theta, ly, inv []float64, delta float64, g []float64) (float64, bool)
}

func (e *evaluator) fg(z, g []float64) float64 {
	e.lay.expand(z, e.theta)
	if fm, ok := e.mdl.(fusedHuber); ok && e.loss.Kind == HuberLog {
		var gt []float64
		if g != nil {
			gt = e.gt
		}
		if f, ok := fm.huberFused(e.theta, e.ly, e.inv, e.loss.delta(), gt); ok {
			if g != nil {
				e.lay.foldGrad(e.gt, g)
			}
			return f
		}
	}
	var jac, dr []float64
	if g != nil {
		jac, dr = e.jac, e.dr
	}
	e.mdl.eval(e.theta, e.lp, jac)
	logSigma := 0.0
	if e.lay.extra > 0 {
		logSigma = z[len(z)-1]
	}
	f, dSigma := e.loss.residualGrad(e.lp, e.ly, e.y, e.scale, dr, logSigma)
	if g == nil {
		return f
	}
	p := e.lay.p
	for j := range e.gt {
		e.gt[j] = 0
	}
	for i, d := range dr {
		row := jac[i*p : i*p+p]
		for j, v := range row {
			e.gt[j] += d * v
		}
	}
	e.lay.foldGrad(e.gt, g)
	if e.lay.extra > 0 {
		g[len(g)-1] = dSigma
	}
	return f
}

// initSigma sets log σ in z (when the loss has it) to the value that is
// optimal for the residuals at z: σ = δ·mean|r| in the Huber tails.
func (e *evaluator) initSigma(z []float64) {
	if e.lay.extra == 0 {
		return
	}
	e.lay.expand(z, e.theta)
	e.mdl.eval(e.theta, e.lp, nil)
	s := 0.0
	for i, v := range e.lp {
		s += math.Abs(v - e.ly[i])
	}
	s = e.loss.delta() * s / float64(len(e.lp))
	z[len(z)-1] = math.Log(math.Max(s, 1e-300))
}

// starts returns the optimiser's starting points.
func starts(law Law, lay *layout, o Options) [][]float64 {
	zs := rawStarts(law, lay, o)
	for _, z := range zs {
		lay.centerZ(z)
	}
	return zs
}

// rawStarts returns the starting points with internal values in the free
// slots.
func rawStarts(law Law, lay *layout, o Options) [][]float64 {
	nz := lay.free
	var out [][]float64
	if len(o.Starts) > 0 {
		th := make([]float64, lay.p)
		for _, s := range o.Starts {
			law.internal(s, th)
			z := make([]float64, nz)
			for j, sl := range lay.slot {
				if sl >= 0 {
					z[sl] = th[j]
				}
			}
			out = append(out, z)
		}
		return out
	}
	// One grid axis per free slot (a tied slot takes the first owner's).
	grid := law.grid()
	axes := make([][]float64, nz-lay.extra)
	for j, sl := range lay.slot {
		if sl >= 0 && axes[sl] == nil {
			axes[sl] = grid[j]
		}
	}
	total := 1
	for _, a := range axes {
		total *= len(a)
	}
	maxGrid := o.MaxGridStarts
	if maxGrid <= 0 {
		maxGrid = 5000
	}
	nRand := o.RandomStarts
	if nRand <= 0 && total > maxGrid {
		nRand = 2000
	}
	if nRand > 0 {
		rng := rand.New(rand.NewPCG(o.Seed, 0x5ca1ab1e))
		for range nRand {
			z := make([]float64, nz)
			for k, a := range axes {
				lo, hi := a[0], a[len(a)-1]
				z[k] = lo + rng.Float64()*(hi-lo)
			}
			out = append(out, z)
		}
		return out
	}
	// Cartesian product, last axis fastest.
	idx := make([]int, len(axes))
	for range total {
		z := make([]float64, nz)
		for k, a := range axes {
			z[k] = a[idx[k]]
		}
		out = append(out, z)
		for k := len(idx) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < len(axes[k]) {
				break
			}
			idx[k] = 0
		}
	}
	return out
}

type startResult struct {
	z   []float64
	res optResult
	mem *memory // curvature at the end of screening, to resume from
	// screened marks a start stopped by the screening pass and not
	// converged further: its end point need not be a local optimum.
	screened bool
}

// forEach runs body(w, i) for i in [0, n) on workers goroutines; w is the
// worker's index, for per-worker state. Work is handed out in order.
func forEach(ctx context.Context, workers, n int, body func(w, i int)) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, n))
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n || ctx.Err() != nil {
					return
				}
				body(w, i)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// runStarts minimises from every start in parallel. Results are indexed by
// start, so the outcome does not depend on scheduling.
//
// With screening (the default), every start first runs to the looser
// relative tolerance Options.Screen; the starts that end within
// Options.PolishWithin of the best are then minimised on to the full
// tolerances. Starts in worse basins stop early, which more than halves
// the cost of a 4,500-point grid, while the best optimum and every start
// near it are converged as tightly as without screening.
//
// It also returns the L-BFGS curvature memory at the end of the best
// start's run, which seeds the bootstrap's refits.
func runStarts(ctx context.Context, law Law, lay *layout, o Options, obs []Obs, zs [][]float64) ([]startResult, *memory, error) {
	set := o.Settings.withDefaults()
	screen, band := o.Screen, o.PolishWithin
	if screen == 0 {
		screen = 1e-5
	}
	if band <= 0 {
		band = 1
	}
	first := set
	if screen > set.FTol {
		first.FTol = screen
	}
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(zs)))
	mdl := law.bind(obs)
	evs := make([]*evaluator, workers)
	opts := make([]*lbfgs, workers)
	for w := range workers {
		evs[w] = newEvaluator(mdl, lay, o.Loss, obs)
		opts[w] = newLBFGS(lay.free, set.Memory)
	}
	out := make([]startResult, len(zs))
	// Each worker keeps the memory of its best final run, ordered by
	// (objective, start index), so the chosen memory does not depend on
	// scheduling.
	type kept struct {
		f   float64
		i   int
		mem *memory
	}
	bests := make([]kept, workers)
	for w := range bests {
		bests[w] = kept{f: math.Inf(1), i: -1}
	}
	keep := func(w, i int, f float64) {
		b := bests[w]
		if finite(f) && (f < b.f || (f == b.f && i < b.i)) {
			bests[w] = kept{f: f, i: i, mem: opts[w].snapshot()}
		}
	}
	final := first.FTol == set.FTol
	err := forEach(ctx, workers, len(zs), func(w, i int) {
		z := append([]float64(nil), zs[i]...)
		evs[w].initSigma(z)
		r := opts[w].minimize(evs[w].fg, z, first)
		out[i] = startResult{z: z, res: r, screened: !final}
		if final {
			keep(w, i, r.f)
		} else {
			out[i].mem = opts[w].snapshot()
		}
	})
	pick := func() *memory {
		var m *memory
		bf, bi := math.Inf(1), -1
		for _, b := range bests {
			if b.i >= 0 && (b.f < bf || (b.f == bf && b.i < bi)) {
				bf, bi, m = b.f, b.i, b.mem
			}
		}
		return m
	}
	if err != nil || final {
		return out, pick(), err
	}
	best := math.Inf(1)
	for _, r := range out {
		if finite(r.res.f) {
			best = math.Min(best, r.res.f)
		}
	}
	var polish []int
	for i, r := range out {
		if finite(r.res.f) && r.res.f <= best+band*math.Abs(best) {
			polish = append(polish, i)
		}
	}
	err = forEach(ctx, workers, len(polish), func(w, k int) {
		i := polish[k]
		// Resume with the curvature learnt while screening: a fresh
		// memory's first step near an optimum is badly scaled and costs
		// a dozen evaluations per start.
		r := opts[w].minimizeWith(evs[w].fg, out[i].z, set, out[i].mem)
		r.iters += out[i].res.iters
		r.evals += out[i].res.evals
		out[i].res = r
		out[i].screened = false
		keep(w, i, r.f)
	})
	for i := range out {
		out[i].mem = nil
	}
	return out, pick(), err
}

// FitLaw fits law to obs.
func FitLaw(ctx context.Context, law Law, obs []Obs, o Options) (*Fit, error) {
	if err := Validate(law, obs); err != nil {
		return nil, err
	}
	lay, err := newLayout(law, o)
	if err != nil {
		return nil, err
	}
	if len(obs) < lay.free {
		return nil, fmt.Errorf("%w: law %s has %d free parameters but there are %d points",
			ErrTooFewPoints, law.Name(), lay.free, len(obs))
	}
	lay.centers = law.centers(obs)
	zs := starts(law, &lay, o)
	results, mem, err := runStarts(ctx, law, &lay, o, obs, zs)
	if err != nil {
		return nil, err
	}
	best := -1
	statuses := map[string]int{}
	for i, r := range results {
		if r.screened {
			statuses["screened"]++
		} else {
			statuses[r.res.status.String()]++
		}
		if finite(r.res.f) && (best < 0 || r.res.f < results[best].res.f) {
			best = i
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("no start reached a finite objective (%d starts)", len(results))
	}
	agreeTol := o.AgreeTol
	if agreeTol <= 0 {
		agreeTol = 1e-9
	}
	bf := results[best].res.f
	// An absolute slack of 1e-15 per point keeps exact fits (objective
	// near zero) from counting only bit-identical starts as agreeing.
	slack := agreeTol*math.Abs(bf) + 1e-15*float64(len(obs))
	agree := 0
	for _, r := range results {
		if r.res.f-bf <= slack {
			agree++
		}
	}
	f := newFit(law, lay, o, obs, results[best].z, bf)
	f.Starts, f.Agree, f.Statuses = len(results), agree, statuses
	f.mem = mem
	f.Optima = optima(law, &lay, results, agreeTol, 1e-15*float64(len(obs)))
	f.diagnose()
	return f, nil
}

func newFit(law Law, lay layout, o Options, obs []Obs, z []float64, obj float64) *Fit {
	f := &Fit{Law: law, Loss: o.Loss, Names: law.Params(), Objective: obj, N: len(obs),
		Free: lay.free, obs: obs, opts: o, lay: lay}
	f.theta = make([]float64, lay.p)
	lay.expand(z, f.theta)
	f.Params = make([]float64, lay.p)
	law.natural(f.theta, f.Params)
	f.Fixed = make([]bool, lay.p)
	for j, s := range lay.slot {
		f.Fixed[j] = s < 0
	}
	f.Tied = o.TieExponents
	if lay.extra > 0 {
		f.LogSigma = z[len(z)-1]
	}
	f.Residuals, f.Goodness = goodness(f)
	return f
}

// optima groups the converged starts' end points by objective value;
// starts the screening pass stopped early are left out, as their end points
// need not be optima.
func optima(law Law, lay *layout, results []startResult, tol, slack float64) []Optimum {
	order := make([]int, 0, len(results))
	for i, r := range results {
		if finite(r.res.f) && !r.screened {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return results[order[a]].res.f < results[order[b]].res.f })
	var out []Optimum
	theta := make([]float64, lay.p)
	for _, i := range order {
		r := results[i]
		if n := len(out); n > 0 && r.res.f-out[n-1].Objective <= tol*math.Abs(out[n-1].Objective)+slack {
			out[n-1].Starts++
			continue
		}
		if len(out) == 5 {
			break
		}
		lay.expand(r.z, theta)
		p := make([]float64, lay.p)
		law.natural(theta, p)
		out = append(out, Optimum{Params: p, Objective: r.res.f, Starts: 1})
	}
	return out
}

// freeVector returns the optimiser's vector at the fit.
func (f *Fit) freeVector() []float64 {
	z := make([]float64, f.lay.free)
	for j, s := range f.lay.slot {
		if s >= 0 {
			z[s] = f.theta[j]
		}
	}
	if f.lay.extra > 0 {
		z[len(z)-1] = f.LogSigma
	}
	f.lay.centerZ(z)
	return z
}

// startVector maps natural parameters to the optimiser's vector; fixed
// parameters keep the fit's values.
func (f *Fit) startVector(p []float64) []float64 {
	th := make([]float64, f.lay.p)
	f.Law.internal(p, th)
	z := make([]float64, f.lay.free)
	for j, s := range f.lay.slot {
		if s >= 0 {
			z[s] = th[j]
		}
	}
	if f.lay.extra > 0 {
		z[len(z)-1] = f.LogSigma
	}
	f.lay.centerZ(z)
	return z
}

// refit minimises ev's objective (another data set) from this fit's
// optimum with the fit's settings.
func (f *Fit) refit(ev *evaluator, opt *lbfgs) (z []float64, r optResult) {
	z = f.freeVector()
	r = opt.minimizeWith(ev.fg, z, f.opts.Settings.withDefaults(), f.mem)
	return z, r
}

// sortedCopy returns a sorted copy of v without NaNs.
func sortedCopy(v []float64) []float64 {
	out := make([]float64, 0, len(v))
	for _, x := range v {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	sort.Float64s(out)
	return out
}
