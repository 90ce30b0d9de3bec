package sweep

import (
	"slices"
	"strings"
)

// Search is an adaptive strategy: the coordinator adds trials where the
// results say they matter, deterministically from the spec and the results.
type Search struct {
	// Degradation finds where repeated data starts to hurt; nil if unused.
	Degradation *DegradationSearch
	// Halving is successive halving over a fidelity parameter; nil if
	// unused.
	Halving *HalvingSearch
	// Asymptote extends a scale axis until the fitted asymptote is pinned
	// down; nil if unused.
	Asymptote *AsymptoteSearch
	// Crossover places trials near where two groups' curves cross; nil if
	// unused.
	Crossover *CrossoverSearch
	// ASHA stops unpromising trials early from the metrics they stream,
	// or pauses and promotes them; nil if unused.
	ASHA *ASHASearch
	// Hyperband runs promotion ASHA in brackets that start at different
	// rungs; nil if unused.
	Hyperband *HyperbandSearch
}

// ASHASearch is asynchronous successive halving, in one of two forms.
//
// As early stopping (the default), every trial runs toward its full
// budget and streams its metrics; when it first reports a Fidelity value
// at or past a rung, its objective there is compared with every other
// trial's at that rung, and unless it ranks in the best 1/Eta (or fewer
// than Eta trials have reached the rung yet) it is stopped, recording why.
//
// With Promote, Fidelity is a fixed parameter that sets a trial's budget
// and every configuration starts at the first rung; each time a trial at
// a rung succeeds, any configuration there that ranks in the best
// floor(n/Eta) of the n finished at that rung, and has not gone on yet,
// is promoted: a trial of it at the next rung is added (ahead of the
// first rung's waiting work), resuming from the lower trial's last
// checkpoint when Continue is set. Until it is promoted or the search is
// over, a finished trial is paused.
//
// Decisions depend on the order trials reach the rungs, as in ASHA; each
// is logged with its ranking.
type ASHASearch struct {
	// Fidelity is the metric that measures progress (tokens, epochs), or
	// with Promote the fixed parameter that sets a trial's budget.
	Fidelity string
	// Rungs are the fidelity values at which trials are compared; with
	// Promote the first is the spec's fixed value of Fidelity.
	Rungs []float64
	// Eta is the share kept at each rung, 1/Eta (default 3).
	Eta float64
	// Promote pauses trials at each rung and promotes the best instead
	// of stopping the worst.
	Promote bool
	// Continue has a promotion resume from the last checkpoint of its
	// configuration's trial at the rung below, as HalvingSearch.Continue
	// does; it needs Promote.
	Continue bool
}

// Next returns the rung after fidelity f, and whether there is one.
func (g *ASHASearch) Next(f float64) (float64, bool) { return nextRung(g.Rungs, f) }

// Promotes reports whether the search promotes as trials succeed
// (promotion ASHA, Hyperband), rather than once every trial has finished.
func (g *Search) Promotes() bool {
	return g != nil && (g.ASHA != nil && g.ASHA.Promote || g.Hyperband != nil)
}

// EarlyStopping returns the search's ASHA when it stops trials early from
// their streamed metrics, else nil.
func (g *Search) EarlyStopping() *ASHASearch {
	if g == nil || g.ASHA == nil || g.ASHA.Promote {
		return nil
	}
	return g.ASHA
}

// Promotion is how a search that promotes configurations from rung to
// rung over a fixed fidelity parameter (halving, promotion ASHA,
// Hyperband) reaches its next rungs.
type Promotion struct {
	// Fidelity is the fixed parameter that sets a trial's budget.
	Fidelity string
	// Next returns the rung after fidelity f, and whether there is one.
	Next func(f float64) (float64, bool)
	// Continue has promotions resume from the rung below's checkpoint.
	Continue bool
}

// Promotion returns how the search promotes, or nil for a search that
// does not promote.
func (g *Search) Promotion() *Promotion {
	switch {
	case g == nil:
		return nil
	case g.Halving != nil:
		h := g.Halving
		return &Promotion{Fidelity: h.Fidelity, Continue: h.Continue, Next: func(f float64) (float64, bool) {
			return f * h.Eta, f*h.Eta <= h.Max*(1+1e-9)
		}}
	case g.ASHA != nil && g.ASHA.Promote:
		return &Promotion{Fidelity: g.ASHA.Fidelity, Continue: g.ASHA.Continue, Next: g.ASHA.Next}
	case g.Hyperband != nil:
		return &Promotion{Fidelity: g.Hyperband.Fidelity, Continue: g.Hyperband.Continue, Next: g.Hyperband.Next}
	}
	return nil
}

// sameRung reports whether fidelities a and b are the same rung, within
// the rounding of a product of factors.
func sameRung(a, b float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= 1e-9*max(a, b, -a, -b)
}

// CrossoverSearch refines where the fitted curves of the analysis plan's
// two groups cross: each time every trial has finished, it fits both
// groups, finds the crossing in the axis's range with a paired bootstrap
// interval, and adds the axis value at the estimated crossing, until the
// interval's ends are within Ratio of each other or the crossing is ruled
// out (most replicates show none in range).
type CrossoverSearch struct {
	// Axis is the numeric grid axis (the plan's x).
	Axis string
	// Ratio is the hi/lo ratio of the crossing's interval at which to
	// stop (default 1.5).
	Ratio float64
	// MaxValues bounds the values added (default 6).
	MaxValues int
}

// AsymptoteSearch is uncertainty-targeted scaling: each time every trial
// has finished, it fits the analysis plan's law and, while the bootstrap
// interval of the asymptote E is wider than TargetWidth, adds the value of
// Axis (one step above or below the grid, keeping its spacing) that is
// predicted to narrow the interval most per unit of cost, the cost of a
// value being proportional to the value itself (a model size). The
// prediction is the cost of certainty's (scaling.PredictWidth), made
// before running anything.
type AsymptoteSearch struct {
	// Axis is the numeric grid axis to extend; it must be the plan's x.
	Axis string
	// TargetWidth is the width of E's 95% interval at which to stop.
	TargetWidth float64
	// MaxValues bounds the values added (default 6).
	MaxValues int
	// Both lets the search also add values below the grid. By default it
	// only grows the axis upward: smaller values are cheaper, so they win
	// on interval width per unit of cost, but a law fitted to ever smaller
	// sizes extrapolates further to the asymptote.
	Both bool
}

// HalvingSearch is synchronous successive halving: every configuration
// runs at the spec's value of the Fidelity parameter (the first rung);
// when a rung has finished, the best 1/Eta of its configurations (by their
// mean objective over seeds) run again at Eta times the fidelity, up to
// Max. The others stop there, and the study records why.
type HalvingSearch struct {
	// Fidelity is a fixed numeric parameter that sets a trial's cost, such
	// as tokens or epochs.
	Fidelity string
	// Max is the largest fidelity a configuration reaches.
	Max float64
	// Eta is the factor between rungs and the share promoted (default 3).
	Eta float64
	// Continue has a promoted configuration resume from the last
	// checkpoint of its run at the rung below, so the compute of the
	// lower rung is spent once. It suits a method whose run to a small
	// budget is the start of its run to a larger one (a constant or
	// warm-up-stable learning rate, not a cosine decay to the budget);
	// off by default, promotions start again from step 0.
	Continue bool
}

// DegradationSearch bisects a numeric axis (usually epochs) for the first
// value where the loss rises above its running minimum by more than the
// seed noise: each time every trial has finished, it adds the geometric
// midpoint of the bracket around that point, until the bracket's ratio is
// at most Resolution or MaxValues values were added. When the loss still
// falls at the axis's largest value, it doubles past it instead.
type DegradationSearch struct {
	// Axis is the numeric grid axis searched (default epochs).
	Axis string
	// Noise is the seed-noise floor σ (default 0.004); replicate seeds
	// raise it to their measured spread.
	Noise float64
	// Resolution is the bracket ratio at which the search stops
	// (default 1.25).
	Resolution float64
	// MaxValues bounds the values the search adds (default 8).
	MaxValues int
}

// search decodes the optional search section.
func (d *decoder) search(n *node, s *Spec) {
	m, ok := d.mapping(n, "search", "degradation", "halving", "asymptote", "crossover", "asha", "hyperband")
	if !ok {
		return
	}
	if len(m) > 1 {
		d.errorf(n.line, "search", "give one strategy: degradation, halving, asymptote, crossover, asha or hyperband")
		return
	}
	if hn, ok := m["hyperband"]; ok {
		d.hyperband(hn, s)
		return
	}
	if hn, ok := m["halving"]; ok {
		d.halving(hn, s)
		return
	}
	if an, ok := m["asymptote"]; ok {
		d.asymptote(an, s)
		return
	}
	if cn, ok := m["crossover"]; ok {
		d.crossover(cn, s)
		return
	}
	if an, ok := m["asha"]; ok {
		d.asha(an, s)
		return
	}
	dn, ok := m["degradation"]
	if !ok {
		return
	}
	dm, ok := d.mapping(dn, "search.degradation", "axis", "noise", "resolution", "max_values")
	if !ok {
		return
	}
	g := &DegradationSearch{Axis: "epochs", Noise: 0.004, Resolution: 1.25, MaxValues: 8}
	line := dn.line
	if v, ok := dm["axis"]; ok {
		g.Axis, _ = d.str(v, "search.degradation.axis")
		line = v.line
	}
	i := slices.IndexFunc(s.Axes, func(a Axis) bool { return a.Name == g.Axis })
	if i < 0 {
		var names []string
		for _, a := range s.Axes {
			names = append(names, a.Name)
		}
		d.errorf(line, "search.degradation.axis", "%q is not a grid axis of the spec%s; grid axes: %s", g.Axis, suggest(g.Axis, names), strings.Join(names, ", "))
	} else if a := s.Axes[i]; len(a.Values) < 2 || !allNumbers(a.Values) {
		d.errorf(line, "search.degradation.axis", "axis %q needs at least two numbers to bracket a change, as in %s: [1, 4, 16, 64]", g.Axis, g.Axis)
	}
	if v, ok := dm["noise"]; ok {
		if f, ok := d.number(v, "search.degradation.noise"); ok {
			if f <= 0 {
				d.errorf(v.line, "search.degradation.noise", "noise %v must be positive, such as 0.004", f)
			}
			g.Noise = f
		}
	}
	if v, ok := dm["resolution"]; ok {
		if f, ok := d.number(v, "search.degradation.resolution"); ok {
			if f <= 1 {
				d.errorf(v.line, "search.degradation.resolution", "resolution %v must be above 1: the ratio of the bracket's ends at which to stop, such as 1.25", f)
			}
			g.Resolution = f
		}
	}
	if v, ok := dm["max_values"]; ok {
		g.MaxValues, _ = d.intAtLeast(v, "search.degradation.max_values", 1)
	}
	s.Search = &Search{Degradation: g}
}

func (d *decoder) halving(n *node, s *Spec) {
	m, ok := d.mapping(n, "search.halving", "fidelity", "max", "eta", "continue")
	if !ok {
		return
	}
	h := &HalvingSearch{Eta: 3}
	fn, ok := m["fidelity"]
	if !ok {
		d.errorf(n.line, "search.halving.fidelity", "missing; name the fixed parameter that sets a trial's cost, as in fidelity: tokens")
		return
	}
	h.Fidelity, _ = d.str(fn, "search.halving.fidelity")
	start, isNum := s.Fixed[h.Fidelity].(float64)
	if !isNum || start <= 0 {
		d.errorf(fn.line, "search.halving.fidelity", "%q must be a positive number under fixed: (the first rung's value), as in fixed: {%s: 100000}", h.Fidelity, h.Fidelity)
		return
	}
	d.eta(m, "search.halving.eta", &h.Eta)
	if v, ok := m["continue"]; ok {
		h.Continue = d.boolean(v, "search.halving.continue")
	}
	mn, ok := m["max"]
	if !ok {
		d.errorf(n.line, "search.halving.max", "missing; the largest %s a configuration reaches", h.Fidelity)
		return
	}
	if f, ok := d.number(mn, "search.halving.max"); ok {
		if f < start*h.Eta {
			d.errorf(mn.line, "search.halving.max", "max %v leaves no rung past the first (%s %v × eta %v)", f, h.Fidelity, start, h.Eta)
		}
		h.Max = f
	}
	s.Search = &Search{Halving: h}
}

func (d *decoder) asymptote(n *node, s *Spec) {
	m, ok := d.mapping(n, "search.asymptote", "axis", "target_width", "max_values", "both")
	if !ok {
		return
	}
	a := &AsymptoteSearch{MaxValues: 6}
	if s.Analysis == nil || s.Analysis.Fit == nil || s.Analysis.Fit.Law != "power" || s.Analysis.Fit.Group != "" {
		d.errorf(n.line, "search.asymptote", "needs an analysis plan fitting the power law without groups, as in analysis: {fit: {law: power, x: params}}")
		return
	}
	a.Axis = s.Analysis.Fit.X
	if v, ok := m["axis"]; ok {
		a.Axis, _ = d.str(v, "search.asymptote.axis")
		if a.Axis != s.Analysis.Fit.X {
			d.errorf(v.line, "search.asymptote.axis", "axis %q must be the analysis plan's x (%q)", a.Axis, s.Analysis.Fit.X)
		}
	}
	i := slices.IndexFunc(s.Axes, func(x Axis) bool { return x.Name == a.Axis })
	if i < 0 || len(s.Axes[i].Values) < 2 || !allNumbers(s.Axes[i].Values) {
		d.errorf(n.line, "search.asymptote.axis", "%q must be a grid axis with at least two numbers, as in %s: [1e6, 1e7, 1e8]", a.Axis, a.Axis)
	}
	tn, ok := m["target_width"]
	if !ok {
		d.errorf(n.line, "search.asymptote.target_width", "missing; the width of the asymptote's 95%% interval at which to stop, as in target_width: 0.05")
		return
	}
	if f, ok := d.number(tn, "search.asymptote.target_width"); ok {
		if f <= 0 {
			d.errorf(tn.line, "search.asymptote.target_width", "target_width %v must be positive", f)
		}
		a.TargetWidth = f
	}
	if v, ok := m["max_values"]; ok {
		a.MaxValues, _ = d.intAtLeast(v, "search.asymptote.max_values", 1)
	}
	if v, ok := m["both"]; ok {
		a.Both = d.boolean(v, "search.asymptote.both")
	}
	s.Search = &Search{Asymptote: a}
}

func (d *decoder) crossover(n *node, s *Spec) {
	m, ok := d.mapping(n, "search.crossover", "ratio", "max_values")
	if !ok {
		return
	}
	if s.Analysis == nil || s.Analysis.Fit == nil || s.Analysis.Fit.Law != "power" || s.Analysis.Fit.Group == "" {
		d.errorf(n.line, "search.crossover", "needs an analysis plan fitting the power law per group, as in analysis: {fit: {law: power, x: unique_tokens, group: recipe}}")
		return
	}
	c := &CrossoverSearch{Axis: s.Analysis.Fit.X, Ratio: 1.5, MaxValues: 6}
	i := slices.IndexFunc(s.Axes, func(x Axis) bool { return x.Name == c.Axis })
	if i < 0 || len(s.Axes[i].Values) < 2 || !allNumbers(s.Axes[i].Values) {
		d.errorf(n.line, "search.crossover", "the plan's x %q must be a grid axis with at least two numbers", c.Axis)
	}
	if v, ok := m["ratio"]; ok {
		if f, ok := d.number(v, "search.crossover.ratio"); ok {
			if f <= 1 {
				d.errorf(v.line, "search.crossover.ratio", "ratio %v must be above 1, such as 1.5", f)
			}
			c.Ratio = f
		}
	}
	if v, ok := m["max_values"]; ok {
		c.MaxValues, _ = d.intAtLeast(v, "search.crossover.max_values", 1)
	}
	s.Search = &Search{Crossover: c}
}

func (d *decoder) asha(n *node, s *Spec) {
	m, ok := d.mapping(n, "search.asha", "fidelity", "rungs", "eta", "promote", "continue")
	if !ok {
		return
	}
	a := &ASHASearch{Eta: 3}
	var fline int
	a.Fidelity, fline = d.fidelity(n, m, "search.asha.fidelity")
	if v, ok := m["promote"]; ok {
		a.Promote = d.boolean(v, "search.asha.promote")
	}
	if v, ok := m["continue"]; ok {
		a.Continue = d.boolean(v, "search.asha.continue")
		if a.Continue && !a.Promote {
			d.errorf(v.line, "search.asha.continue", "needs promote: true: early stopping ends trials, it has nothing to continue; add promote: true or remove continue")
		}
	}
	var start float64
	if a.Promote {
		if start, ok = d.fixedBudget(s, fline, "search.asha.fidelity", a.Fidelity, "with promote, "); !ok {
			return
		}
	}
	rn, ok := m["rungs"]
	if !ok {
		d.errorf(n.line, "search.asha.rungs", "missing; the %s values at which trials are compared, as in rungs: [1e5, 3e5, 9e5]", a.Fidelity)
		return
	}
	a.Rungs, ok = d.rungs(rn, "search.asha.rungs")
	if a.Promote && ok && len(a.Rungs) > 0 {
		if !sameRung(a.Rungs[0], start) {
			d.errorf(rn.line, "search.asha.rungs", "with promote, the first rung %v must be fixed %s's value %v, where every configuration starts; as in rungs: [%v, %v, %v]", a.Rungs[0], a.Fidelity, start, start, start*3, start*9)
		} else if len(a.Rungs) < 2 {
			d.errorf(rn.line, "search.asha.rungs", "with promote, give at least two rungs: there is nothing to promote to past %v", start)
		}
	}
	d.eta(m, "search.asha.eta", &a.Eta)
	s.Search = &Search{ASHA: a}
}

// fidelity decodes the optional fidelity of m (default tokens), with the
// line to report it at.
func (d *decoder) fidelity(n *node, m map[string]*node, field string) (string, int) {
	v, ok := m["fidelity"]
	if !ok {
		return "tokens", n.line
	}
	name, _ := d.str(v, field)
	return name, v.line
}

// fixedBudget returns the fixed value of fidelity parameter name, the
// first rung, reporting at field when it is not a positive number.
func (d *decoder) fixedBudget(s *Spec, line int, field, name, prefix string) (float64, bool) {
	start, isNum := s.Fixed[name].(float64)
	if !isNum || start <= 0 {
		d.errorf(line, field, "%s%q must be a positive number under fixed: (the first rung's budget, which sets a trial's cost), not a streamed metric; as in fixed: {%s: 100000}", prefix, name, name)
		return 0, false
	}
	return start, true
}

// rungs decodes a list of positive, increasing rungs at field.
func (d *decoder) rungs(n *node, field string) ([]float64, bool) {
	items, ok := d.list(n, field, "of increasing positive numbers")
	var out []float64
	for _, it := range items {
		f, ok := d.number(it, field)
		if !ok {
			continue
		}
		if f <= 0 || (len(out) > 0 && f <= out[len(out)-1]) {
			d.errorf(it.line, field, "rung %v: rungs must be positive and increasing", f)
		}
		out = append(out, f)
	}
	return out, ok
}

// eta decodes the optional eta of m into *eta, which must be at least 2.
func (d *decoder) eta(m map[string]*node, field string, eta *float64) {
	v, ok := m["eta"]
	if !ok {
		return
	}
	if f, ok := d.number(v, field); ok {
		if f < 2 {
			d.errorf(v.line, field, "eta %v must be at least 2", f)
		}
		*eta = f
	}
}

// boolean decodes a true or false, reporting anything else at field.
func (d *decoder) boolean(n *node, field string) bool {
	v, ok := d.scalar(n, field)
	if !ok {
		return false
	}
	b, isBool := v.(bool)
	if !isBool {
		d.errorf(n.line, field, "want true or false")
	}
	return b
}
