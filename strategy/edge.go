package strategy

import (
	"fmt"
	"sort"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// Edges is the grid extension of an analysis plan with extend: after a
// refit, it adds one value past each grid edge that a certified-looking
// best run sits on (the summary's edges), at most the plan's Extend values
// per edge.
func Edges(s *Study) Step {
	var st Step
	if s.Spec.Analysis == nil || s.Spec.Analysis.Fit == nil || s.Spec.Analysis.Fit.Extend == 0 {
		return st
	}
	plan := s.Spec.Analysis.Fit
	seen := map[api.Edge]bool{}
	var edges []api.Edge
	for _, sum := range s.Analysis {
		for _, u := range sum.Uncert {
			for _, e := range u.Edges {
				if !seen[e] {
					seen[e] = true
					edges = append(edges, e)
				}
			}
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].Axis != edges[j].Axis {
			return edges[i].Axis < edges[j].Axis
		}
		return !edges[i].Last
	})
	for _, e := range edges {
		done := 0
		for _, x := range s.Extensions {
			if x.By == "edge" && x.Axis == e.Axis && x.Last == e.Last {
				done++
			}
		}
		if done >= plan.Extend {
			continue
		}
		cur := s.Spec
		if st.Spec != nil {
			cur = st.Spec
		}
		v, ok := sweep.BeyondEdge(axisOf(cur, e.Axis), e.Last)
		if !ok {
			continue
		}
		end := "first"
		if e.Last {
			end = "last"
		}
		x := api.Extension{By: "edge", Axis: e.Axis, Value: v, Last: e.Last, Reason: fmt.Sprintf("a best run sat on %s's %s value", e.Axis, end)}
		if err := st.extend(s.Spec, x); err != nil {
			st.Notes = append(st.Notes, fmt.Sprintf("cannot extend the grid's axis %s: %v", e.Axis, err))
		}
	}
	return st
}
