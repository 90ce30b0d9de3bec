package sweep

import (
	"slices"
	"strings"
)

// Analysis is what a study is for: the scaling law to fit to its results.
// `asymptote dev` prints the fit when the study finishes.
type Analysis struct {
	// Fit is the law fitted over one axis; nil when the spec has none.
	Fit *FitPlan
}

// FitPlan fits a scaling law to a study's results.
type FitPlan struct {
	// Law is power (default), chinchilla, datablations or ensemble.
	Law string
	// X is the column of the scale variable: a parameter, or a metric the
	// method reports (such as its exact "params" count); params by default.
	X string
	// Group names a parameter with one curve per value (one per recipe).
	Group string
	// BestOver lists the tuned parameters: at each point of X (and group),
	// only the best trial over them is fitted.
	BestOver []string
	// Bootstrap is the number of bootstrap resamples for the intervals
	// (default 200; 0 means none).
	Bootstrap int
	// Seed seeds the bootstrap.
	Seed int64
	// Extend is how many values the coordinator may add past each edge of
	// each tuned axis when a best run sits on the edge (0: never).
	Extend int
}

// Laws a fit plan may name.
var fitLaws = []string{"power", "chinchilla", "datablations", "ensemble"}

// analysis decodes the optional analysis section. Parameter names it uses
// must be defined by the spec; X may also be a metric, so it is not
// checked.
func (d *decoder) analysis(n *node, s *Spec) {
	m, ok := d.mapping(n, "analysis", "fit")
	if !ok {
		return
	}
	fn, ok := m["fit"]
	if !ok {
		return
	}
	fm, ok := d.mapping(fn, "analysis.fit", "law", "x", "group", "best_over", "bootstrap", "seed", "extend")
	if !ok {
		return
	}
	p := &FitPlan{Law: "power", X: "params", Bootstrap: 200}
	if v, ok := fm["law"]; ok {
		p.Law, _ = d.oneOf(v, "analysis.fit.law", "law", fitLaws...)
	}
	if v, ok := fm["x"]; ok {
		p.X, _ = d.str(v, "analysis.fit.x")
	}
	defined := s.paramNames()
	checkName := func(v *node, field string) (string, bool) {
		name, ok := d.str(v, field)
		if !ok {
			return "", false
		}
		if !slices.Contains(defined, name) {
			d.errorf(v.line, field, "unknown parameter %q%s; the spec defines: %s", name, suggest(name, defined), strings.Join(defined, ", "))
			return "", false
		}
		return name, true
	}
	if v, ok := fm["group"]; ok {
		p.Group, _ = checkName(v, "analysis.fit.group")
	}
	if v, ok := fm["best_over"]; ok {
		items, ok := d.list(v, "analysis.fit.best_over", "of tuned parameter names, such as [weight_decay, epochs]")
		for _, it := range items {
			if name, ok := checkName(it, "analysis.fit.best_over"); ok {
				p.BestOver = append(p.BestOver, name)
			}
		}
		_ = ok
	}
	if v, ok := fm["bootstrap"]; ok {
		p.Bootstrap, _ = d.intAtLeast(v, "analysis.fit.bootstrap", 0)
	}
	if v, ok := fm["extend"]; ok {
		p.Extend, _ = d.intAtLeast(v, "analysis.fit.extend", 0)
		if p.Extend > 0 && len(p.BestOver) == 0 {
			d.errorf(v.line, "analysis.fit.extend", "extend needs best_over: it extends the tuned axes when a best run sits on their edge")
		}
	}
	if v, ok := fm["seed"]; ok {
		if seed, ok := d.integer(v, "analysis.fit.seed"); ok {
			p.Seed = seed
		}
	}
	s.Analysis = &Analysis{Fit: p}
}

// paramNames returns every parameter the spec defines, sorted.
func (s *Spec) paramNames() []string {
	var names []string
	for _, a := range s.Axes {
		names = append(names, a.Name)
	}
	if s.Random != nil {
		for _, d := range s.Random.Dists {
			names = append(names, d.Name)
		}
	}
	for k := range s.Fixed {
		names = append(names, k)
	}
	for _, d := range s.Derived {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
