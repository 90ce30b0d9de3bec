package scaling

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/mat"
)

// BootstrapOptions configure a nonparametric bootstrap.
type BootstrapOptions struct {
	// Resamples is the number of refits (default 1,000).
	Resamples int
	// Level is the coverage of the percentile intervals (default 0.95).
	Level float64
	// Seed makes the resamples reproducible; resample i draws from its own
	// stream (Seed, i), so results do not depend on scheduling.
	Seed uint64
	// Workers is the number of refits run at once (default GOMAXPROCS).
	Workers int
	// Start, when set, is the natural-parameter vector every refit starts
	// from (Besiroglu et al. start from Hoffmann et al.'s estimates); by
	// default refits start at the fit's optimum.
	Start []float64
	// Hierarchical resamples in two stages that split the variation
	// between variance components (Davison and Hinkley 1997, §3.8): the
	// configurations (observations with identical law inputs) stay where
	// they are; the first stage moves each one's mean by its residual from
	// the law times a weight drawn from Webb's six-point distribution (a
	// wild cluster bootstrap, Cameron, Gelbach and Miller 2008), shrunk to
	// the part of the means' spread their seed noise does not explain;
	// the second draws every run's seed noise from the seed-noise model,
	// its level and trend themselves drawn from their sampling
	// distributions. Resampling configurations and then runs within them
	// counts the seed noise twice, once in the configurations' means and
	// again within them: its intervals covered 0.99 for a nominal 0.95.
	// See docs/scaling.md.
	Hierarchical bool
}

// Interval is a closed interval [Lo, Hi].
type Interval struct{ Lo, Hi float64 }

// Contains reports whether v lies in the interval.
func (i Interval) Contains(v float64) bool { return v >= i.Lo && v <= i.Hi }

// BootstrapResult holds the refits of a bootstrap over runs.
type BootstrapResult struct {
	// Resamples and Level are as requested; Failed counts refits that
	// reached no finite objective (left out of the intervals).
	Resamples, Failed int
	Level             float64
	// Samples[i] are resample i's natural parameters (nil if it failed or
	// was not run).
	Samples [][]float64
	// Intervals, Median and StdErr are per natural parameter; a fixed
	// parameter's interval is its value.
	Intervals []Interval
	Median    []float64
	StdErr    []float64
	// ByGroup is true when whole runs (Obs.Group) were resampled.
	ByGroup bool
	// Hierarchical is true when the seed noise was resampled by
	// configuration (BootstrapOptions.Hierarchical); Configs is then the
	// number of configurations.
	Hierarchical bool
	Configs      int
	// NotIdentified is set when the fit has no residual degrees of
	// freedom (see Fit.Identified): no refit is run, and every free
	// parameter's interval, median and standard error is NaN.
	NotIdentified bool
}

// Interval returns the named parameter's interval.
func (b *BootstrapResult) Interval(f *Fit, name string) (Interval, bool) {
	j := indexOf(f.Names, name)
	if j < 0 {
		return Interval{}, false
	}
	return b.Intervals[j], true
}

// quantile returns the q-quantile of sorted v with linear interpolation
// (NumPy's default), NaN for an empty slice.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	h := q * float64(len(v)-1)
	lo := math.Floor(h)
	i := int(lo)
	if i >= len(v)-1 {
		return v[len(v)-1]
	}
	if h == lo {
		// Exactly on a sample: also keeps an infinite neighbour from
		// turning 0·∞ into NaN.
		return v[i]
	}
	return v[i] + (h-lo)*(v[i+1]-v[i])
}

// resampleIndex draws a bootstrap resample of observation indices: whole
// groups when the observations carry Group labels, rows otherwise.
func resampleIndex(rng *rand.Rand, groups [][]int, n int, dst []int) []int {
	dst = dst[:0]
	if groups == nil {
		for range n {
			dst = append(dst, rng.IntN(n))
		}
		return dst
	}
	for range groups {
		dst = append(dst, groups[rng.IntN(len(groups))]...)
	}
	return dst
}

// runsByConfig returns, per configuration (identical law inputs), the
// observation indices of each of its runs: rows sharing a Group are one
// run, a row without a Group is a run of its own.
func runsByConfig(law Law, obs []Obs) [][][]int {
	var out [][][]int
	for _, idx := range configsOf(law, obs) {
		runs := keyGroups(idx, func(i int) string {
			if g := obs[i].Group; g != "" {
				return "g" + g
			}
			return fmt.Sprint("row ", i)
		})
		out = append(out, runs)
	}
	return out
}

// webb holds Webb's six-point weights ±√(1/2), ±1, ±√(3/2), each drawn
// with probability 1/6: mean 0 and variance 1 like Rademacher signs, but
// with 6^G distinct resamples of G configurations instead of 2^G, which
// matters when the configurations are few (Webb 2023).
var webb = [6]float64{-math.Sqrt(1.5), -1, -math.Sqrt(0.5), math.Sqrt(0.5), 1, math.Sqrt(1.5)}

// seedBlocks is the two-stage resampling plan of a fit's configurations
// (see BootstrapOptions.Hierarchical).
type seedBlocks struct {
	// rows are each configuration's observation indices.
	rows [][]int
	// mean is each configuration's mean log residual divided by √(1 − h),
	// h its leverage; shrink scales it to the variation between
	// configurations that seed noise does not explain.
	mean   []float64
	shrink float64
	// sd is each configuration's seed noise of log loss.
	sd []float64
	// nu is the degrees of freedom of the seed-noise level, slopeSE the
	// standard error of its trend's exponent and logRel each
	// configuration's log(L̂/RefLoss): every resample draws the level and
	// the exponent from their sampling distributions, so that noise
	// estimated from few seeds is not taken as known.
	nu      int
	slopeSE float64
	logRel  []float64
}

// newSeedBlocks builds the plan: per configuration, the leverage-corrected
// mean residual m̃ and the seed noise σ (the fit's seed-noise model, or
// without one the variance pooled within the replicated configurations),
// and the share of the means' spread that exceeds the seed noise,
// shrink² = max(0, 1 − Σσ²/k / Σm̃²) (method of moments: zero when the law
// explains the means to within their seed noise).
func newSeedBlocks(f *Fit, configs [][][]int) *seedBlocks {
	sb := &seedBlocks{}
	for _, runs := range configs {
		var rows []int
		for _, run := range runs {
			rows = append(rows, run...)
		}
		sb.rows = append(sb.rows, rows)
	}
	lev := blockLeverage(f, sb.rows)
	pooledSS := 0.0
	for c, rows := range sb.rows {
		var m, r float64
		for _, i := range rows {
			l := math.Log(f.obs[i].Loss)
			m += l
			r += l - math.Log(f.Predict(f.obs[i]))
		}
		k := float64(len(rows))
		m /= k
		for _, i := range rows {
			d := math.Log(f.obs[i].Loss) - m
			pooledSS += d * d
		}
		sb.nu += len(rows) - 1
		sb.mean = append(sb.mean, r/k/math.Sqrt(1-lev[c]))
	}
	nz := f.Noise()
	if nz != nil && nz.DoF > 0 {
		sb.nu = nz.DoF
	}
	var between, seed float64
	for c, rows := range sb.rows {
		l := f.Predict(f.obs[rows[0]])
		var v, lr float64
		switch {
		case nz != nil && nz.Pooled > 0:
			v = nz.At(l) * nz.At(l)
			if nz.Trend {
				sb.slopeSE, lr = nz.SlopeSE, math.Log(l/nz.RefLoss)
			}
		case sb.nu > 0:
			v = pooledSS / float64(sb.nu)
		}
		sb.sd, sb.logRel = append(sb.sd, math.Sqrt(v)), append(sb.logRel, lr)
		between += sb.mean[c] * sb.mean[c]
		seed += v / float64(len(rows))
	}
	if between > 0 {
		sb.shrink = math.Sqrt(math.Max(0, 1-seed/between))
	}
	return sb
}

// resample fills sub with one two-stage resample. The first stage moves
// configuration c by shrink·w_c·m̃_c, w_c one of Webb's weights; the second
// draws each run's seed noise, σ_c·g·(L̂_c/RefLoss)^δ·z, with the level's
// draw g = √(ν/χ²_ν), the exponent's δ = SE·z′ (once per resample) and
// z standard normal.
func (sb *seedBlocks) resample(rng *rand.Rand, f *Fit, sub []Obs) []Obs {
	sub = sub[:0]
	level := 1.0
	if sb.nu > 0 {
		chi := 0.0
		for range sb.nu {
			z := rng.NormFloat64()
			chi += z * z
		}
		level = math.Sqrt(float64(sb.nu) / chi)
	}
	dSlope := sb.slopeSE * rng.NormFloat64()
	for c, rows := range sb.rows {
		a := sb.shrink * webb[rng.IntN(len(webb))] * sb.mean[c]
		sd := sb.sd[c] * level * math.Exp(dSlope*sb.logRel[c])
		for _, i := range rows {
			o := f.obs[i]
			o.Loss = f.Predict(o) * math.Exp(a+sd*rng.NormFloat64())
			sub = append(sub, o)
		}
	}
	return sub
}

// blockLeverage returns, per block of observations, 1ᵀH_bb1/n_b: the share
// of the block's mean residual the weighted fit absorbs, H = J(JᵀJ)⁻¹Jᵀ
// the hat matrix of the scaled log-loss Jacobian at the optimum (for a
// block of identical rows, the sum of their leverages). It is capped at
// 0.9 so that a block the fit passes through (h → 1) is not blown up, and
// all zeros when the Jacobian is singular.
func blockLeverage(f *Fit, blocks [][]int) []float64 {
	lev := make([]float64, len(blocks))
	cols, _ := f.freeColumns()
	if len(cols) == 0 {
		return lev
	}
	j, _ := f.jacobian(f.obs, cols, false)
	var jtj, inv mat.Dense
	jtj.Mul(j.T(), j)
	if err := inv.Inverse(&jtj); err != nil {
		return lev
	}
	k := len(cols)
	for b, rows := range blocks {
		// 1ᵀH_bb1 = sᵀ(JᵀJ)⁻¹s with s the sum of the block's rows of J.
		s := mat.NewVecDense(k, nil)
		for _, i := range rows {
			for c := range k {
				s.SetVec(c, s.AtVec(c)+j.At(i, c))
			}
		}
		h := mat.Inner(s, &inv, s) / float64(len(rows))
		lev[b] = math.Min(math.Max(h, 0), 0.9)
	}
	return lev
}

// groupsOf returns the observation indices of each Group, in order of first
// appearance, or nil when no observation has a group.
func groupsOf(obs []Obs) [][]int {
	seen := map[string]int{}
	var groups [][]int
	any := false
	for i, o := range obs {
		if o.Group != "" {
			any = true
		}
		k, ok := seen[o.Group]
		if !ok {
			k = len(groups)
			seen[o.Group] = k
			groups = append(groups, nil)
		}
		groups[k] = append(groups[k], i)
	}
	if !any {
		return nil
	}
	return groups
}

// Bootstrap refits f on resamples of its observations (whole runs when they
// carry groups), each from f's optimum, and sets f.Bootstrap with
// percentile intervals. It adds a warning for every parameter whose
// interval spans more than two orders of magnitude or crosses zero.
//
// A fit with no residual degrees of freedom is not bootstrapped: its curve
// passes through every point, so it also passes through every resample's
// and each refit would return the fit itself, an interval of zero width
// that claims certainty the data cannot give. The result is then marked
// NotIdentified and its free parameters' intervals are NaN.
func Bootstrap(ctx context.Context, f *Fit, o BootstrapOptions) (*BootstrapResult, error) {
	if o.Resamples <= 0 {
		o.Resamples = 1000
	}
	if o.Level <= 0 || o.Level >= 1 {
		o.Level = 0.95
	}
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, o.Resamples)
	groups := groupsOf(f.obs)
	b := &BootstrapResult{Resamples: o.Resamples, Level: o.Level, ByGroup: groups != nil,
		Samples: make([][]float64, o.Resamples)}
	var blocks *seedBlocks
	if o.Hierarchical {
		configs := runsByConfig(f.Law, f.obs)
		b.Hierarchical, b.Configs = true, len(configs)
		if f.Identified() {
			blocks = newSeedBlocks(f, configs)
		}
	}
	if !f.Identified() {
		b.NotIdentified = true
		p := len(f.Names)
		b.Intervals, b.Median, b.StdErr = make([]Interval, p), make([]float64, p), make([]float64, p)
		nan := math.NaN()
		for j, v := range f.Params {
			if f.Fixed[j] {
				b.Intervals[j], b.Median[j] = Interval{v, v}, v
				continue
			}
			b.Intervals[j], b.Median[j], b.StdErr[j] = Interval{nan, nan}, nan, nan
		}
		f.Bootstrap = b
		return b, nil
	}
	set := f.opts.Settings.withDefaults()
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opt := newLBFGS(f.lay.free, set.Memory)
			var idx []int
			var sub []Obs
			theta := make([]float64, f.lay.p)
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= o.Resamples || ctx.Err() != nil {
					return
				}
				rng := rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
				if blocks != nil {
					sub = blocks.resample(rng, f, sub)
				} else {
					idx = resampleIndex(rng, groups, len(f.obs), idx)
					sub = sub[:0]
					for _, k := range idx {
						sub = append(sub, f.obs[k])
					}
				}
				ev := newEvaluator(f.Law.bind(sub), &f.lay, f.Loss, sub)
				z := f.freeVector()
				if o.Start != nil {
					z = f.startVector(o.Start)
					ev.initSigma(z)
				}
				// The optimum's curvature memory makes the first steps
				// near-Newton: about half the evaluations of an empty one.
				r := opt.minimizeWith(ev.fg, z, set, f.mem)
				if !finite(r.f) {
					continue
				}
				f.lay.expand(z, theta)
				p := make([]float64, f.lay.p)
				f.Law.natural(theta, p)
				b.Samples[i] = p
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := len(f.Names)
	b.Intervals, b.Median, b.StdErr = make([]Interval, p), make([]float64, p), make([]float64, p)
	col := make([]float64, 0, o.Resamples)
	for j := range p {
		col = col[:0]
		for _, s := range b.Samples {
			if s != nil {
				col = append(col, s[j])
			}
		}
		sorted := sortedCopy(col)
		a := (1 - o.Level) / 2
		b.Intervals[j] = Interval{quantile(sorted, a), quantile(sorted, 1-a)}
		b.Median[j] = quantile(sorted, 0.5)
		b.StdErr[j] = stddev(sorted)
	}
	for _, s := range b.Samples {
		if s == nil {
			b.Failed++
		}
	}
	f.Bootstrap = b
	f.identification()
	return b, nil
}

func stddev(v []float64) float64 {
	if len(v) < 2 {
		return math.NaN()
	}
	m := 0.0
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	s := 0.0
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(v)-1))
}

// correlation returns Pearson's r of x and y (NaN when undefined).
func correlation(x, y []float64) float64 {
	n := float64(len(x))
	if n < 3 {
		return math.NaN()
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	return sxy / math.Sqrt(sxx*syy)
}

// identification warns about parameters the bootstrap shows to be weakly
// identified.
func (f *Fit) identification() {
	b := f.Bootstrap
	pos := f.Law.positive()
	for j, name := range f.Names {
		if f.Fixed[j] {
			continue
		}
		iv := b.Intervals[j]
		pct := int(math.Round(b.Level * 100))
		switch {
		case pos[j] && iv.Lo > 0 && iv.Hi/iv.Lo > 100:
			f.Warnings = append(f.Warnings, fmt.Sprintf(
				"%s: %d%% interval (%.3g, %.3g) spans %.1f orders of magnitude: weakly identified, bounded by the data only where the interval is tight",
				name, pct, iv.Lo, iv.Hi, math.Log10(iv.Hi/iv.Lo)))
		case !pos[j] && iv.Lo <= 0 && iv.Hi > 0:
			f.Warnings = append(f.Warnings, fmt.Sprintf(
				"%s: %d%% interval (%.3g, %.3g) includes zero: the power law is not identified", name, pct, iv.Lo, iv.Hi))
		}
	}
	// The coefficient and its exponent trade off along a flat valley
	// (Besiroglu et al.: the A and B directions are flat); say so when the
	// refits show it.
	for _, pair := range [][2]string{{"A", "alpha"}, {"B", "beta"}} {
		i, j := indexOf(f.Names, pair[0]), indexOf(f.Names, pair[1])
		if i < 0 || j < 0 || f.Fixed[i] || f.Fixed[j] {
			continue
		}
		var xs, ys []float64
		for _, s := range b.Samples {
			if s != nil && s[i] > 0 {
				xs, ys = append(xs, math.Log(s[i])), append(ys, s[j])
			}
		}
		if r := correlation(xs, ys); math.Abs(r) > 0.99 {
			f.Warnings = append(f.Warnings, fmt.Sprintf(
				"log %s and %s are almost collinear across the bootstrap (r = %.3f): each is poorly determined alone; compare predictions, not %s",
				pair[0], pair[1], r, pair[0]))
		}
	}
	if b.Failed > b.Resamples/20 {
		f.Warnings = append(f.Warnings, fmt.Sprintf("%d of %d bootstrap refits failed", b.Failed, b.Resamples))
	}
}

// Prediction is a point prediction with its bootstrap intervals.
type Prediction struct {
	// Value is the fitted law's prediction.
	Value float64
	// Mean is the percentile interval of the fitted curve at the point
	// (a confidence interval for the expected loss).
	Mean Interval
	// Range is the prediction interval for a new run's loss: the curve's
	// bootstrap spread combined with the fitted log residuals, which
	// carry the law's misfit as well as seed noise.
	Range Interval
	// Seed, when the fit has a seed-noise model (Options.Noise), is the
	// prediction interval for a new seed if the law is right: the curve's
	// spread combined with seed noise drawn from the model. Where it is
	// much narrower than Range, the residuals are mostly misfit. Without
	// a model it equals Range.
	Seed Interval
}

// PredictInterval predicts o with intervals at the bootstrap's level. It
// needs a bootstrap (see Bootstrap); without one both intervals equal
// Value, and for a fit that is not identified both are NaN.
func (f *Fit) PredictInterval(o Obs) Prediction {
	v := f.Predict(o)
	pr := Prediction{Value: v, Mean: Interval{v, v}, Range: Interval{v, v}, Seed: Interval{v, v}}
	b := f.Bootstrap
	if b == nil {
		return pr
	}
	if b.NotIdentified {
		nan := math.NaN()
		pr.Mean, pr.Range, pr.Seed = Interval{nan, nan}, Interval{nan, nan}, Interval{nan, nan}
		return pr
	}
	curve := make([]float64, 0, len(b.Samples))
	with := make([]float64, 0, len(b.Samples))
	var seed []float64
	rng := rand.New(rand.NewPCG(f.opts.Seed, 0x9e3779b9))
	for _, s := range b.Samples {
		if s == nil {
			continue
		}
		c := f.Law.Predict(s, o)
		curve = append(curve, c)
		r := f.Residuals[rng.IntN(len(f.Residuals))].LogResid
		with = append(with, c*math.Exp(-r))
		if nz := f.opts.Noise; nz != nil {
			seed = append(seed, c*math.Exp(nz.At(c)*rng.NormFloat64()))
		}
	}
	a := (1 - b.Level) / 2
	curve, with = sortedCopy(curve), sortedCopy(with)
	pr.Mean = Interval{quantile(curve, a), quantile(curve, 1-a)}
	pr.Range = Interval{quantile(with, a), quantile(with, 1-a)}
	pr.Seed = pr.Range
	if seed != nil {
		seed = sortedCopy(seed)
		pr.Seed = Interval{quantile(seed, a), quantile(seed, 1-a)}
	}
	return pr
}
