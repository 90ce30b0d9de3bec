package strategy

import (
	"fmt"
	"math"
	"slices"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// Rungs is ASHA's table: the objective values recorded at each rung of a
// study's early stopping, in the order trials reached them.
type Rungs map[float64][]float64

// NewRungs rebuilds the table from the rungs the trial records hold.
func NewRungs(trials []api.Trial) Rungs {
	r := Rungs{}
	for _, t := range trials {
		r.Add(t.Rungs)
	}
	return r
}

// Add records rungs a trial passed, as a rebuilt table holds them.
func (r Rungs) Add(passed []api.Rung) {
	for _, x := range passed {
		r[x.Rung] = append(r[x.Rung], x.Value)
	}
}

// Judge applies ASHA to one metrics report of a running trial whose
// records hold the rungs passed: it records in the table every rung the
// report reaches for the first time, and returns them (for the trial's
// record) with, when the trial ranks outside the best 1/Eta of the trials
// that reached one of them, the reason to stop it. Fewer than Eta trials
// at a rung are too few to judge: early trials pass. A report that lacks
// the fidelity or the objective, or whose objective is NaN, changes
// nothing.
func (r Rungs) Judge(g *sweep.ASHASearch, objective string, maximize bool, passed []api.Rung, values map[string]float64) (reached []api.Rung, stop string) {
	f, ok1 := values[g.Fidelity]
	v, ok2 := values[objective]
	if !ok1 || !ok2 || math.IsNaN(v) {
		return nil, ""
	}
	for _, rung := range g.Rungs {
		if f < rung {
			return reached, ""
		}
		if slices.ContainsFunc(passed, func(x api.Rung) bool { return x.Rung == rung }) {
			continue
		}
		reached = append(reached, api.Rung{Rung: rung, Fidelity: f, Value: v})
		r[rung] = append(r[rung], v)
		n := len(r[rung])
		if float64(n) < g.Eta {
			continue // too few to judge yet: ASHA lets early trials through
		}
		vals := slices.Clone(r[rung])
		slices.Sort(vals)
		if maximize {
			slices.Reverse(vals)
		}
		k := int(math.Ceil(float64(n) / g.Eta))
		cut := vals[k-1]
		if (!maximize && v <= cut) || (maximize && v >= cut) {
			continue
		}
		rank := 1 + slices.IndexFunc(vals, func(x float64) bool { return x == v })
		return reached, fmt.Sprintf("stopped early by ASHA at %s=%g (rung %g): %s %.5g ranks %d of %d trials there; the best %d continue (cut-off %.5g)",
			g.Fidelity, f, rung, objective, v, rank, n, k, cut)
	}
	return reached, ""
}
