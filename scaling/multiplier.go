package scaling

import (
	"errors"
	"fmt"
	"math"
)

// MultiplierOptions configure ComputeMultiplier.
type MultiplierOptions struct {
	// At are the scales (compute for the Chinchilla laws) at which to
	// compare the recipes.
	At []float64
	// Data are points (N, D, and U for the data-constrained law) at which
	// to give the data multiplier: at the same N (and U), how many times
	// the tokens B needs A needs for the same loss. Chinchilla and
	// DataConstrained laws only.
	Data []Obs
	// Gate, when positive, is the multiplier a recipe B must beat: each
	// point's decision is yes when P(m > Gate) ≥ Level over the paired
	// replicates, no when P(m < Gate) ≥ Level, undecided otherwise.
	Gate float64
	// Level is the confidence of the intervals and the gate (default the
	// bootstraps' level).
	Level float64
}

// MultiplierAt is the compute multiplier at one scale.
type MultiplierAt struct {
	// X is A's scale and XB the scale at which B reaches A's loss there,
	// L_B(XB) = L_A(X); M = X/XB is the compute multiplier: A needs M
	// times the compute B needs for the same loss (M > 1: B is better).
	// M is 0 when B never reaches A's loss (L_A(X) ≤ E_B; XB is then
	// +Inf).
	X, XB, M float64
	// CI is the percentile interval of M over the paired replicates.
	CI Interval
	// Extrapolated is true when X lies outside A's observed scales or XB
	// outside B's: the multiplier then rests on the laws' extrapolation.
	Extrapolated bool
	// PAbove is P(M > Gate) over the replicates, and Decision the gate's
	// answer: "yes", "no" or "undecided" ("" without a gate).
	PAbove   float64
	Decision string
	// Point is the data multiplier's point (X is then its D, XB the
	// tokens B needs at the same N and U).
	Point Obs
}

// Multipliers compares two recipes' fitted curves.
type Multipliers struct {
	At []MultiplierAt
	// Data are the data multipliers at MultiplierOptions.Data.
	Data []MultiplierAt
	// EA and EB are the asymptotes, Ratio = EB/EA with its interval, and
	// PLower = P(EB < EA) over the replicates.
	EA, EB, Ratio float64
	RatioCI       Interval
	PLower        float64
	// Limit is the multiplier as the scale grows without bound, LimitCI
	// its interval, and LimitRule says which case applies: with different
	// asymptotes it is +Inf (EB < EA) or 0; with equal asymptotes (held
	// equal with Options.Fixed) it is (K_A/K_B)^(1/γ) when the exponents
	// agree, and +Inf or 0 by the larger exponent otherwise.
	Limit     float64
	LimitCI   Interval
	LimitRule string
	// Replicates is the number of paired bootstrap replicates.
	Replicates int
	Level      float64
}

// powerForm returns a curve's saturating power-law form in its scale x,
// L(x) = E + K·x^−γ: the law itself for the one-dimensional laws, the
// compute-optimal frontier in C for the Chinchilla laws (K = L*(1) − E,
// since L*(C) = E + K₆·(C/6)^−γ).
func powerForm(law Law, p []float64) (e, k, g float64) {
	switch law {
	case Chinchilla, DataConstrained:
		fr := FrontierOf(p)
		g = fr.Alpha * fr.Beta / (fr.Alpha + fr.Beta)
		return fr.E, (fr.Loss(1) - fr.E), g
	}
	return p[0], p[1], p[2]
}

// multiplierAt is x/x_B for the curves of parameters pa and pb, with x_B
// solved in closed form from the curves' power-law forms:
// L_A(x) − E_B = (E_A − E_B) + K_A·x^−γ_A = K_B·x_B^−γ_B. The difference
// of asymptotes is taken before the small excess is added, so the answer
// keeps its precision far out, where L − E is a tiny part of L. m is 0
// when B never reaches A's loss (L_A(x) ≤ E_B).
func multiplierAt(law Law, pa, pb []float64, x float64) (m, xb float64) {
	ea, ka, ga := powerForm(law, pa)
	eb, kb, gb := powerForm(law, pb)
	excess := (ea - eb) + ka*math.Pow(x, -ga)
	if !(excess > 0) {
		return 0, math.Inf(1)
	}
	xb = math.Exp(-(math.Log(excess) - math.Log(kb)) / gb)
	return x / xb, xb
}

// dataMultiplierAt is D/D_B at point o: D_B solves L_B(N, D_B, U) = L_A(N,
// D, U) over twelve decades either side of D (for the data-constrained
// law, from U up: it reads fewer tokens than unique ones as U). m is 0
// when B never reaches A's loss at this N (and U), +Inf when B is below it
// even at the search's lower end.
func dataMultiplierAt(law Law, pa, pb []float64, o Obs) (m, db float64) {
	target := law.Predict(pa, o)
	h := func(ld float64) float64 {
		q := o
		q.D = math.Exp(ld)
		return law.Predict(pb, q) - target
	}
	lo, hi := math.Log(o.D)-12*math.Ln10, math.Log(o.D)+12*math.Ln10
	if law == DataConstrained {
		lo = math.Max(lo, math.Log(o.U))
	}
	hl, hh := h(lo), h(hi)
	switch {
	case hh > 0:
		return 0, math.Inf(1)
	case hl < 0:
		return math.Inf(1), 0
	}
	db = math.Exp(brent(h, lo, hi, hl, hh))
	return o.D / db, db
}

// limitOf is the multiplier as x → ∞ and the rule that gives it.
func limitOf(law Law, pa, pb []float64) (float64, string) {
	ea, ka, ga := powerForm(law, pa)
	eb, kb, gb := powerForm(law, pb)
	switch {
	case math.Abs(ea-eb) > 1e-12*math.Abs(ea):
		if eb < ea {
			return math.Inf(1), "different asymptotes: the second recipe's is lower, so its advantage grows without bound"
		}
		return 0, "different asymptotes: the second recipe's is higher, so it eventually never reaches the first's loss"
	case math.Abs(ga-gb) > 1e-12*math.Abs(ga):
		if gb > ga {
			return math.Inf(1), "equal asymptotes, the second recipe's exponent larger"
		}
		return 0, "equal asymptotes, the first recipe's exponent larger"
	}
	return math.Pow(ka/kb, 1/ga), "equal asymptotes and exponents: (K_A/K_B)^(1/γ)"
}

// ComputeMultiplier compares recipe B (fb) with recipe A (fa), fitted with
// one law: the compute multiplier at each scale of o.At, its limit, and the
// ratio of asymptotes, with intervals from the paired bootstrap replicates
// (replicate i of A with replicate i of B) when both fits carry
// bootstraps.
func ComputeMultiplier(fa, fb *Fit, o MultiplierOptions) (*Multipliers, error) {
	if fa.Law != fb.Law {
		return nil, fmt.Errorf("the recipes are fitted with different laws (%s, %s)", fa.Law.Name(), fb.Law.Name())
	}
	for _, x := range o.At {
		if !(x > 0) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("multiplier scale %g must be positive and finite", x)
		}
	}
	law := fa.Law
	if len(o.Data) > 0 && law != Chinchilla && law != DataConstrained {
		return nil, fmt.Errorf("the data multiplier needs the chinchilla or datablations law (tokens as an input), not %s", law.Name())
	}
	for _, p := range o.Data {
		if !(p.N > 0 && p.D > 0) || (law == DataConstrained && !(p.U > 0)) {
			return nil, fmt.Errorf("data multiplier point %+v: N, D (and U for datablations) must be positive", p)
		}
	}
	r := &Multipliers{EA: fa.Params[0], EB: fb.Params[0], Level: o.Level}
	r.Ratio = r.EB / r.EA
	r.Limit, r.LimitRule = limitOf(law, fa.Params, fb.Params)
	ra, rb := observedRange(fa), observedRange(fb)
	for _, x := range o.At {
		m, xb := multiplierAt(law, fa.Params, fb.Params, x)
		r.At = append(r.At, MultiplierAt{X: x, XB: xb, M: m, CI: Interval{m, m},
			Extrapolated: !ra.Contains(x) || !rb.Contains(xb)})
	}
	da, dbr := tokenRange(fa), tokenRange(fb)
	for _, p := range o.Data {
		m, db := dataMultiplierAt(law, fa.Params, fb.Params, p)
		r.Data = append(r.Data, MultiplierAt{X: p.D, XB: db, M: m, CI: Interval{m, m}, Point: p,
			Extrapolated: !da.Contains(p.D) || !dbr.Contains(db)})
	}
	r.RatioCI, r.LimitCI = Interval{r.Ratio, r.Ratio}, Interval{r.Limit, r.Limit}
	ba, bb := fa.Bootstrap, fb.Bootstrap
	if ba == nil || bb == nil {
		if o.Gate > 0 {
			return nil, errors.New("the gate needs bootstrap replicates of both recipes")
		}
		return r, nil
	}
	if ba.NotIdentified || bb.NotIdentified {
		nan := Interval{math.NaN(), math.NaN()}
		r.RatioCI, r.LimitCI = nan, nan
		for _, pts := range [][]MultiplierAt{r.At, r.Data} {
			for j := range pts {
				pts[j].CI = nan
				if o.Gate > 0 {
					pts[j].Decision = "undecided"
				}
			}
		}
		return r, nil
	}
	if r.Level <= 0 || r.Level >= 1 {
		r.Level = ba.Level
	}
	ms := make([][]float64, len(o.At))
	ds := make([][]float64, len(o.Data))
	var ratios, limits []float64
	lower := 0
	for i := range min(len(ba.Samples), len(bb.Samples)) {
		sa, sb := ba.Samples[i], bb.Samples[i]
		if sa == nil || sb == nil {
			continue
		}
		r.Replicates++
		for j, x := range o.At {
			m, _ := multiplierAt(law, sa, sb, x)
			ms[j] = append(ms[j], m)
		}
		for j, p := range o.Data {
			m, _ := dataMultiplierAt(law, sa, sb, p)
			ds[j] = append(ds[j], m)
		}
		ratios = append(ratios, sb[0]/sa[0])
		if sb[0] < sa[0] {
			lower++
		}
		l, _ := limitOf(law, sa, sb)
		limits = append(limits, l)
	}
	if r.Replicates == 0 {
		return r, errors.New("no paired bootstrap replicates")
	}
	q := (1 - r.Level) / 2
	pct := func(v []float64) Interval {
		s := sortedCopy(v)
		return Interval{quantile(s, q), quantile(s, 1-q)}
	}
	r.RatioCI, r.LimitCI = pct(ratios), pct(limits)
	r.PLower = float64(lower) / float64(r.Replicates)
	for j := range r.At {
		r.At[j].gate(ms[j], o.Gate, r.Level, pct)
	}
	for j := range r.Data {
		r.Data[j].gate(ds[j], o.Gate, r.Level, pct)
	}
	return r, nil
}

// gate sets the point's interval from its replicates ms and, with a
// positive gate, P(m > gate) and the decision at level.
func (a *MultiplierAt) gate(ms []float64, gate, level float64, pct func([]float64) Interval) {
	a.CI = pct(ms)
	if gate <= 0 {
		return
	}
	above, below := 0, 0
	for _, m := range ms {
		switch {
		case m > gate:
			above++
		case m < gate:
			below++
		}
	}
	n := float64(len(ms))
	a.PAbove = float64(above) / n
	switch {
	case float64(above)/n >= level:
		a.Decision = "yes"
	case float64(below)/n >= level:
		a.Decision = "no"
	default:
		a.Decision = "undecided"
	}
}

// tokenRange is the range of D in f's data.
func tokenRange(f *Fit) Interval {
	iv := Interval{math.Inf(1), math.Inf(-1)}
	for _, o := range f.obs {
		iv.Lo, iv.Hi = math.Min(iv.Lo, o.D), math.Max(iv.Hi, o.D)
	}
	return iv
}
