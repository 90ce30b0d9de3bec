package scaling

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// TrainingCurve is one training run's loss as training proceeds: the loss at each
// recorded point (a step of its history or a checkpoint) against the
// compute spent so far, C = 6·N·D with D the tokens seen by then.
type TrainingCurve struct {
	// Label names the run (a trial, or the size when curves are grouped
	// by it).
	Label string
	N     float64
	// C and Loss are the points, C strictly increasing.
	C, Loss []float64
}

// End is the compute at the curve's last point.
func (c TrainingCurve) End() float64 { return c.C[len(c.C)-1] }

// at is the curve's loss at compute x by linear interpolation of log loss
// in log compute between the recorded points; ok is false outside them
// (the curve is never extrapolated).
func (c TrainingCurve) at(x float64) (float64, bool) {
	if x < c.C[0] || x > c.End() {
		return math.NaN(), false
	}
	j := sort.SearchFloat64s(c.C, x)
	if c.C[j] == x {
		return c.Loss[j], true
	}
	t := (math.Log(x) - math.Log(c.C[j-1])) / (math.Log(c.C[j]) - math.Log(c.C[j-1]))
	return math.Exp((1-t)*math.Log(c.Loss[j-1]) + t*math.Log(c.Loss[j])), true
}

// CurvesOf gathers observations (N, D and Loss set) into training curves:
// one per Group where groups are set, else one per model size N. Points
// are sorted by compute 6ND; of points at the same compute the last
// given is kept (a resumed attempt reporting a step again). A group with
// more than one N is refused: it is not one run.
func CurvesOf(obs []Obs) ([]TrainingCurve, error) {
	type key struct {
		group string
		n     float64
	}
	var order []key
	byKey := map[key]map[float64]float64{}
	groupN := map[string]float64{}
	for i, o := range obs {
		if !(o.N > 0) || !(o.D > 0) || !(o.Loss > 0) || math.IsInf(o.N*o.D*o.Loss, 0) {
			return nil, fmt.Errorf("approach 1: point %d (N %g, D %g, loss %g): sizes and loss must be positive and finite", i+1, o.N, o.D, o.Loss)
		}
		k := key{n: o.N}
		if o.Group != "" {
			if n, ok := groupN[o.Group]; ok && n != o.N {
				return nil, fmt.Errorf("approach 1: run %q has points at N = %g and N = %g; a training curve is one model size (is --group the run's column?)", o.Group, n, o.N)
			}
			groupN[o.Group] = o.N
			k = key{group: o.Group}
		}
		pts, ok := byKey[k]
		if !ok {
			pts = map[float64]float64{}
			byKey[k] = pts
			order = append(order, k)
		}
		pts[6*o.N*o.D] = o.Loss
	}
	curves := make([]TrainingCurve, 0, len(order))
	for _, k := range order {
		pts := byKey[k]
		c := TrainingCurve{Label: k.group}
		if k.group == "" {
			c.Label = fmt.Sprintf("N=%.4g", k.n)
			c.N = k.n
		} else {
			c.N = groupN[k.group]
		}
		for x := range pts {
			c.C = append(c.C, x)
		}
		sort.Float64s(c.C)
		for _, x := range c.C {
			c.Loss = append(c.Loss, pts[x])
		}
		curves = append(curves, c)
	}
	return curves, nil
}

// EnvelopeOptions configure EnvelopeFit.
type EnvelopeOptions struct {
	// Budgets is the number of log-spaced compute budgets the envelope is
	// taken at (default 100), over the range where at least two curves
	// overlap.
	Budgets int
	// Resamples is the number of bootstrap replicates over model sizes
	// (0: none); Level the intervals' coverage (default 0.95); Seed makes
	// them reproducible.
	Resamples int
	Level     float64
	Seed      uint64
}

// EnvelopePoint is the envelope at one budget.
type EnvelopePoint struct {
	C float64
	// Curves is the number of curves that reach C (no extrapolation).
	Curves int
	// Curve is the index of the curve with the lowest loss at C, N its
	// size, D = C/(6N) its tokens and Loss the loss there.
	Curve int
	N, D  float64
	Loss  float64
	// Edge says why the point is left out of the power laws ("" when it
	// is used): the lowest curve is of the smallest or the largest size
	// among those reaching C, so they do not bracket the optimum.
	Edge string
}

// Envelope is Hoffmann et al.'s Approach 1: the lower envelope of the
// training curves over compute, and power laws through the sizes that
// reach it, N_opt = KN·C^A and D_opt = KD·C^B, fitted by least squares in
// log space over the budgets where the optimum is bracketed.
type Envelope struct {
	Curves []TrainingCurve
	// Sizes is the number of distinct model sizes; OneRunPerSize is true
	// when no size has more than one curve (see EnvelopeCaveat).
	Sizes         int
	OneRunPerSize bool
	Points        []EnvelopePoint
	// Used is the number of points fitted; Winners the number of distinct
	// sizes among their minima.
	Used, Winners int
	A, KN         float64
	B, KD         float64
	ACI, BCI      Interval
	Level         float64
	// Replicates counts the bootstrap replicates used, Failed those left
	// out because the resampled sizes left fewer than two bracketed
	// minima of different sizes.
	Replicates, Failed int
	samples            [][2]float64 // (log KN, A) per replicate
	q                  float64
}

// EnvelopeCaveat is the bias of an envelope with one run per size: a
// run's loss partway through is that of a learning-rate schedule set for
// its full length, higher than a run whose schedule ends there, so every
// curve but near its end lies above the loss its size could reach at that
// compute, and the envelope leans toward the sizes whose runs end near each
// budget. Hoffmann et al. trained each size with several cosine cycle
// lengths to keep that gap small.
const EnvelopeCaveat = "each size has one run, whose learning-rate schedule was set for its full length: before its end a curve lies above what a run scheduled to stop there would reach, so the envelope favours at each budget the sizes whose runs end near it and N_opt follows the runs' lengths as well as the law (in a simulation with a 5% penalty, one run of 400 tokens per parameter per size gave a = 0.40 for a true 0.45); Hoffmann et al. trained each size with several cosine cycle lengths for this"

// EnvelopeFit takes the lower envelope of the curves at Budgets log-spaced
// budgets over the compute where at least two curves overlap, interpolating
// each curve's log loss in log compute and never past its ends, and fits
// log N_opt and log D_opt against log C by least squares through the
// bracketed minima. With Resamples, each replicate draws the model sizes
// with replacement (a size's curves together), retakes the envelope on the
// same budgets and refits; the intervals are percentiles.
//
// It refuses fewer than three model sizes, a curve with fewer than two
// points, compute where fewer than two curves overlap inside the range
// (a gap), an overlap spanning less than a decade of compute, and an
// envelope with fewer than three bracketed budgets or only one size among
// their minima; each error names what to add.
func EnvelopeFit(ctx context.Context, curves []TrainingCurve, o EnvelopeOptions) (*Envelope, error) {
	if o.Budgets <= 0 {
		o.Budgets = 100
	}
	if o.Budgets < 3 {
		return nil, fmt.Errorf("approach 1: %d budgets; the power law needs at least 3", o.Budgets)
	}
	if o.Level <= 0 || o.Level >= 1 {
		o.Level = 0.95
	}
	if err := checkCurves(curves); err != nil {
		return nil, err
	}
	sizes := sizesOf(curves)
	r := &Envelope{Curves: curves, Sizes: len(sizes), OneRunPerSize: len(sizes) == len(curves), Level: o.Level}
	if r.Sizes < 3 {
		return nil, fmt.Errorf("approach 1: %d model sizes (%s); the envelope needs at least 3, so that a minimum can lie between sizes: add curves of other sizes",
			r.Sizes, sizeList(sizes))
	}
	lo, hi, err := overlap(curves)
	if err != nil {
		return nil, err
	}
	grid := make([]float64, o.Budgets)
	for i := range grid {
		grid[i] = math.Exp(math.Log(lo) + (math.Log(hi)-math.Log(lo))*float64(i)/float64(o.Budgets-1))
	}
	grid[0], grid[len(grid)-1] = lo, hi
	all := make([]int, len(curves))
	for i := range all {
		all[i] = i
	}
	r.Points = envelopeAt(curves, all, grid)
	lc, ln, ld, winners := usedPoints(r.Points)
	r.Used, r.Winners = len(lc), winners
	if r.Used < 3 || r.Winners < 2 {
		edges := 0
		for _, p := range r.Points {
			if p.Edge != "" {
				edges++
			}
		}
		return r, fmt.Errorf("approach 1: %d of %d budgets have their minimum between sizes, with %d distinct sizes among them; the power law needs 3 budgets and 2 sizes (%d minima are on the smallest or the largest size reaching their budget): add sizes beyond the winning ones, or train the smaller sizes longer so their curves reach the larger budgets",
			r.Used, len(r.Points), r.Winners, edges)
	}
	k, a := line(lc, ln)
	r.A, r.KN = a, math.Exp(k)
	kd, b := line(lc, ld)
	r.B, r.KD = b, math.Exp(kd)
	if o.Resamples <= 0 {
		return r, nil
	}
	var as, bs []float64
	for i := range o.Resamples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rng := rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
		drawn := map[float64]bool{}
		for range sizes {
			drawn[sizes[rng.IntN(len(sizes))]] = true
		}
		var idx []int
		for j, c := range curves {
			if drawn[c.N] {
				idx = append(idx, j)
			}
		}
		pts := envelopeAt(curves, idx, grid)
		xc, xn, xd, w := usedPoints(pts)
		if len(xc) < 3 || w < 2 {
			r.Failed++
			continue
		}
		kk, aa := line(xc, xn)
		_, bb := line(xc, xd)
		as, bs = append(as, aa), append(bs, bb)
		r.samples = append(r.samples, [2]float64{kk, aa})
	}
	r.Replicates = len(as)
	if r.Replicates == 0 {
		return r, fmt.Errorf("approach 1: every bootstrap replicate drew too few sizes for a bracketed minimum; add model sizes")
	}
	r.q = (1 - o.Level) / 2
	sa, sb := sortedCopy(as), sortedCopy(bs)
	r.ACI = Interval{quantile(sa, r.q), quantile(sa, 1-r.q)}
	r.BCI = Interval{quantile(sb, r.q), quantile(sb, 1-r.q)}
	return r, nil
}

// At returns N_opt and D_opt = C/(6·N_opt) at compute c from the power
// law, with percentile intervals over the replicates (equal to the values
// without a bootstrap).
func (r *Envelope) At(c float64) (n, d float64, nCI, dCI Interval) {
	return allocationAt(c, r.KN, r.A, r.samples, r.q)
}

// checkCurves refuses curves that are not training curves.
func checkCurves(curves []TrainingCurve) error {
	for _, c := range curves {
		switch {
		case !(c.N > 0) || math.IsInf(c.N, 0):
			return fmt.Errorf("approach 1: curve %s: model size %g must be positive", c.Label, c.N)
		case len(c.C) != len(c.Loss):
			return fmt.Errorf("approach 1: curve %s: %d compute values and %d losses", c.Label, len(c.C), len(c.Loss))
		case len(c.C) < 2:
			return fmt.Errorf("approach 1: curve %s (N=%.4g) has %d point; a training curve needs the loss at several points of the run: give its per-step history or checkpoint records, not only its final loss",
				c.Label, c.N, len(c.C))
		}
		for j := range c.C {
			if !(c.C[j] > 0) || math.IsInf(c.C[j], 0) || !(c.Loss[j] > 0) || math.IsInf(c.Loss[j], 0) {
				return fmt.Errorf("approach 1: curve %s, point %d: compute %g and loss %g must be positive and finite", c.Label, j+1, c.C[j], c.Loss[j])
			}
			if j > 0 && !(c.C[j] > c.C[j-1]) {
				return fmt.Errorf("approach 1: curve %s, point %d: compute %g does not exceed the previous point's %g (CurvesOf sorts points)", c.Label, j+1, c.C[j], c.C[j-1])
			}
		}
	}
	return nil
}

// sizesOf returns the distinct model sizes, ascending.
func sizesOf(curves []TrainingCurve) []float64 {
	seen := map[float64]bool{}
	var out []float64
	for _, c := range curves {
		if !seen[c.N] {
			seen[c.N] = true
			out = append(out, c.N)
		}
	}
	sort.Float64s(out)
	return out
}

func sizeList(sizes []float64) string {
	s := make([]string, len(sizes))
	for i, n := range sizes {
		s[i] = fmt.Sprintf("%.4g", n)
	}
	return strings.Join(s, ", ")
}

// overlap returns the compute range over which at least two curves reach
// every budget, refusing a range with a gap in it or one under a decade.
func overlap(curves []TrainingCurve) (lo, hi float64, err error) {
	type event struct {
		c     float64
		delta int
	}
	var ev []event
	for _, c := range curves {
		ev = append(ev, event{c.C[0], 1}, event{c.End(), -1})
	}
	// At equal compute starts come first: curves touching at a point
	// overlap there.
	sort.Slice(ev, func(i, j int) bool {
		if ev[i].c != ev[j].c {
			return ev[i].c < ev[j].c
		}
		return ev[i].delta > ev[j].delta
	})
	// Spans of compute where at least two curves run.
	type span struct{ lo, hi float64 }
	var spans []span
	n := 0
	for _, e := range ev {
		before := n
		n += e.delta
		switch {
		case before < 2 && n >= 2:
			spans = append(spans, span{lo: e.c})
		case before >= 2 && n < 2:
			spans[len(spans)-1].hi = e.c
		}
	}
	if len(spans) == 0 {
		return 0, 0, fmt.Errorf("approach 1: no compute is reached by two curves: the curves do not overlap; train them longer, or add sizes between them")
	}
	if len(spans) > 1 {
		var gaps []string
		for i := 1; i < len(spans); i++ {
			gaps = append(gaps, fmt.Sprintf("%.3g to %.3g FLOP", spans[i-1].hi, spans[i].lo))
		}
		return 0, 0, fmt.Errorf("approach 1: fewer than two curves overlap from %s, between budgets where they do; the envelope there would be one run's curve, or none: add a size whose curve spans it, or train the curves that end before it longer",
			strings.Join(gaps, " and "))
	}
	lo, hi = spans[0].lo, spans[0].hi
	if hi < 10*lo {
		return 0, 0, fmt.Errorf("approach 1: two or more curves overlap only from %.3g to %.3g FLOP (×%.2g); the power laws need at least a decade of compute: train the curves longer, or add sizes whose curves extend the overlap",
			lo, hi, hi/lo)
	}
	return lo, hi, nil
}

// envelopeAt takes the envelope of the curves idx at each budget of grid;
// budgets fewer than two of them reach are left out. A minimum on the
// smallest or the largest size among the curves that reach a budget is an
// edge: the sizes there do not bracket it (the smaller sizes' runs may
// have stopped before it, the larger ones' not yet begun).
func envelopeAt(curves []TrainingCurve, idx []int, grid []float64) []EnvelopePoint {
	var out []EnvelopePoint
	for _, c := range grid {
		p := EnvelopePoint{C: c, Curve: -1, Loss: math.Inf(1)}
		smallest, largest := math.Inf(1), math.Inf(-1)
		for _, j := range idx {
			l, ok := curves[j].at(c)
			if !ok {
				continue
			}
			p.Curves++
			n := curves[j].N
			smallest, largest = math.Min(smallest, n), math.Max(largest, n)
			if l < p.Loss {
				p.Loss, p.Curve, p.N = l, j, n
			}
		}
		if p.Curves < 2 {
			continue
		}
		p.D = c / (6 * p.N)
		switch p.N {
		case smallest:
			p.Edge = "the smallest size reaching this budget is lowest: the optimum may be smaller"
		case largest:
			p.Edge = "the largest size reaching this budget is lowest: the optimum may be larger"
		}
		out = append(out, p)
	}
	return out
}

// usedPoints returns log C, log N_opt and log D_opt of the bracketed
// points, and the number of distinct sizes among them.
func usedPoints(pts []EnvelopePoint) (lc, ln, ld []float64, winners int) {
	seen := map[float64]bool{}
	for _, p := range pts {
		if p.Edge != "" {
			continue
		}
		lc, ln, ld = append(lc, math.Log(p.C)), append(ln, math.Log(p.N)), append(ld, math.Log(p.D))
		seen[p.N] = true
	}
	return lc, ln, ld, len(seen)
}
