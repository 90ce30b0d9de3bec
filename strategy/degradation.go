package strategy

import (
	"fmt"
	"math"
	"sort"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// Degradation is one step of the degradation search: for every series
// whose loss rises above its running minimum by more than the noise, it
// adds the geometric midpoint of the bracket around the rise (until the
// bracket is within the search's resolution); for every series whose loss
// still falls at the axis's largest value, it adds twice that value. It
// records no decision: each added value carries its reason.
func Degradation(s *Study) (Step, error) {
	g := s.Spec.Search.Degradation
	var obs []scaling.Obs
	for _, t := range s.Trials {
		if t.State != sweep.Succeeded || t.Result == nil || t.Result.Objective == nil {
			continue
		}
		x, ok := analysis.Lookup(t, g.Axis)
		if !ok {
			continue
		}
		o := scaling.Obs{Loss: *t.Result.Objective}
		o.N, _ = analysis.Lookup(t, "params")
		o.U, _ = analysis.Lookup(t, "unique_tokens")
		// The searched axis plays the role of epochs: D = x·U.
		o.D = x * o.U
		if o.N <= 0 || o.U <= 0 {
			// Without the accounting, epochs are the axis itself.
			o.N, o.U, o.D = 1, 1, x
		}
		obs = append(obs, o)
	}
	if len(obs) == 0 {
		return Step{}, nil
	}
	rep, err := scaling.EpochAnalysis(obs, scaling.EpochOptions{NoiseFloor: g.Noise})
	if err != nil {
		return Step{}, err
	}
	type value struct {
		x      float64
		reason string
	}
	var next []value
	for _, ser := range rep.Series {
		pts := ser.Points
		if len(pts) < 2 {
			continue
		}
		switch {
		case ser.Degrades > 0:
			prev := 0.0
			for _, p := range pts {
				if p.Epochs < ser.Degrades {
					prev = p.Epochs
				}
			}
			if prev > 0 && ser.Degrades/prev > g.Resolution {
				next = append(next, value{math.Sqrt(prev * ser.Degrades),
					fmt.Sprintf("the loss rose more than %.2g·σ (σ=%.3g) between %s=%g and %g; bisecting", rep.Z, rep.Sigma, g.Axis, prev, ser.Degrades)})
			}
		case ser.Best == pts[len(pts)-1].Epochs:
			last := pts[len(pts)-1].Epochs
			next = append(next, value{2 * last, fmt.Sprintf("the loss still falls at the largest %s=%g; doubling", g.Axis, last)})
		}
	}
	sort.SliceStable(next, func(i, j int) bool { return next[i].x < next[j].x })
	var st Step
	added := s.extended(g.Axis)
	for _, v := range next {
		if added >= g.MaxValues {
			st.Notes = append(st.Notes, fmt.Sprintf("degradation search stopped at its value budget (max_values %d)", g.MaxValues))
			break
		}
		// A value already present (a bracket shared by two series) is
		// skipped.
		if st.extend(s.Spec, api.Extension{By: "degradation", Axis: g.Axis, Value: roundSig(v.x, 3), Reason: "degradation search: " + v.reason}) == nil {
			added++
		}
	}
	return st, nil
}
