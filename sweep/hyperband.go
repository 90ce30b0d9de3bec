package sweep

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// HyperbandSearch is asynchronous Hyperband over promotion ASHA: the
// configurations are dealt to Brackets brackets, bracket b (from 1)
// starting them at the b-th of Rungs, and within each bracket promotion
// ASHA runs over the rungs from there up. The first bracket explores the
// most configurations on the smallest budget; the last runs the fewest at
// the largest, safe from a first rung too small to rank them.
//
// Configurations go to brackets in the order the grid expands them (every
// seed of one in the same bracket), each to the bracket furthest below its
// share, the shares being Hyperband's: bracket b weighs Eta^s/(s+1), s
// being the rungs above its first. A configuration's bracket is part of
// its trials' identity.
type HyperbandSearch struct {
	// Fidelity is the fixed parameter that sets a trial's budget; its
	// fixed value is the first rung.
	Fidelity string
	// Rungs are the fidelity values at which trials are compared.
	Rungs []float64
	// Eta is the share promoted at each rung, 1/Eta (default 3).
	Eta float64
	// Brackets is how many brackets there are (default and most: one per
	// rung, the last running its configurations at the top rung alone, as
	// Hyperband's last bracket is plain random search at the full budget).
	Brackets int
	// Continue has a promotion resume from the rung below's checkpoint.
	Continue bool
}

// Shares returns the share of configurations each bracket gets, first
// bracket first.
func (h *HyperbandSearch) Shares() []float64 {
	w := make([]float64, h.Brackets)
	sum := 0.0
	for b := range w {
		s := float64(len(h.Rungs) - 1 - b)
		w[b] = math.Pow(h.Eta, s) / (s + 1)
		sum += w[b]
	}
	for b := range w {
		w[b] /= sum
	}
	return w
}

// Next returns the rung after fidelity f, and whether there is one.
func (h *HyperbandSearch) Next(f float64) (float64, bool) { return nextRung(h.Rungs, f) }

// hyperband returns the search's Hyperband, or nil.
func (g *Search) hyperband() *HyperbandSearch {
	if g == nil {
		return nil
	}
	return g.Hyperband
}

// bracketing deals configurations to brackets as an expansion meets them.
type bracketing struct {
	h      *HyperbandSearch
	skip   map[string]bool // the fidelity and what is derived
	shares []float64
	counts []int
	seen   map[string]int
}

func (h *HyperbandSearch) bracketing(derived []Derived) *bracketing {
	skip := map[string]bool{h.Fidelity: true}
	for _, d := range derived {
		skip[d.Name] = true
	}
	return &bracketing{h: h, skip: skip, shares: h.Shares(), counts: make([]int, h.Brackets), seen: map[string]int{}}
}

// of returns the bracket (from 1) of the configuration params belongs
// to, dealing a new one to the bracket furthest below its share.
func (a *bracketing) of(params map[string]any) int {
	names := make([]string, 0, len(params))
	for k := range params {
		if !a.skip[k] {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var key strings.Builder
	for _, k := range names {
		key.WriteString(k)
		key.WriteByte('=')
		key.WriteString(canonicalValue(params[k]))
		key.WriteByte(';')
	}
	if b, ok := a.seen[key.String()]; ok {
		return b
	}
	n := float64(len(a.seen) + 1)
	best, deficit := 0, math.Inf(-1)
	for b, share := range a.shares {
		if d := n*share - float64(a.counts[b]); d > deficit+1e-12 {
			best, deficit = b, d
		}
	}
	a.counts[best]++
	a.seen[key.String()] = best + 1
	return best + 1
}

// nextRung returns the rung after f among rungs, and whether there is one.
func nextRung(rungs []float64, f float64) (float64, bool) {
	for i, r := range rungs {
		if sameRung(r, f) && i+1 < len(rungs) {
			return rungs[i+1], true
		}
	}
	return 0, false
}

func (d *decoder) hyperband(n *node, s *Spec) {
	m, ok := d.mapping(n, "search.hyperband", "fidelity", "rungs", "eta", "brackets", "continue")
	if !ok {
		return
	}
	h := &HyperbandSearch{Eta: 3}
	var fline int
	h.Fidelity, fline = d.fidelity(n, m, "search.hyperband.fidelity")
	start, ok := d.fixedBudget(s, fline, "search.hyperband.fidelity", h.Fidelity, "")
	if !ok {
		return
	}
	rn, ok := m["rungs"]
	if !ok {
		d.errorf(n.line, "search.hyperband.rungs", "missing; the %s values of the rungs, the first being fixed %s's, as in rungs: [%v, %v, %v]", h.Fidelity, h.Fidelity, start, start*3, start*9)
		return
	}
	h.Rungs, _ = d.rungs(rn, "search.hyperband.rungs")
	if len(h.Rungs) < 2 {
		d.errorf(rn.line, "search.hyperband.rungs", "give at least two rungs: there is nothing to promote to past %v", start)
		return
	}
	if !sameRung(h.Rungs[0], start) {
		d.errorf(rn.line, "search.hyperband.rungs", "the first rung %v must be fixed %s's value %v", h.Rungs[0], h.Fidelity, start)
	}
	d.eta(m, "search.hyperband.eta", &h.Eta)
	h.Brackets = len(h.Rungs)
	if v, ok := m["brackets"]; ok {
		if b, ok := d.intAtLeast(v, "search.hyperband.brackets", 1); ok {
			if b > len(h.Rungs) {
				d.errorf(v.line, "search.hyperband.brackets", "%d brackets for %d rungs: at most one per rung, as in brackets: %d", b, len(h.Rungs), len(h.Rungs))
			}
			h.Brackets = min(b, len(h.Rungs))
		}
	}
	if v, ok := m["continue"]; ok {
		h.Continue = d.boolean(v, "search.hyperband.continue")
	}
	s.Search = &Search{Hyperband: h}
}

// String describes the brackets for a decision log.
func (h *HyperbandSearch) String() string {
	var parts []string
	for b, share := range h.Shares() {
		parts = append(parts, fmt.Sprintf("bracket %d from %s=%g: %.0f%%", b+1, h.Fidelity, h.Rungs[b], 100*share))
	}
	return strings.Join(parts, ", ")
}
