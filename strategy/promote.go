package strategy

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// Promote is one step of promotion-based ASHA (the ASHA paper's
// Algorithm 2, pausing and resuming rather than stopping): for each rung
// below the last, it ranks the succeeded trials there by their objective
// and promotes those in the best floor(n/Eta) of the n ranked that have no
// trial at the next rung yet, adding one at the next rung's fidelity with
// the same parameters and seed. Promotions from higher rungs come first,
// then by rank, which is the order they should run in. Each trial is its
// own configuration: seeds are not pooled.
//
// Promote decides on whatever has finished, so the leader calls it as
// trials succeed. When nothing is left to promote and no trial of the
// study is still to run, it returns a Step with only a decision saying the
// search is over.
func Promote(s *Study) (Step, error) {
	g := s.Spec.Search.ASHA
	return promote(s, g.Fidelity, g.Rungs, g.Eta, g.Continue, "ASHA")
}

// ranked is a trial ranked at its rung.
type ranked struct {
	i     int // index into Study.Trials
	score float64
}

// promote is Promote over the rungs given (one bracket's, for Hyperband);
// name names the search in its decisions.
func promote(s *Study, fidelity string, rungs []float64, eta float64, cont bool, name string) (Step, error) {
	ids := make(map[string]bool, len(s.Trials))
	open := 0
	for _, t := range s.Trials {
		ids[t.ID] = true
		if !t.State.Terminal() {
			open++
		}
	}
	atRung := make([][]ranked, len(rungs))
	maximize := s.maximize()
	for i, t := range s.Trials {
		k := rungOf(t, fidelity, rungs)
		if k < 0 || t.State != sweep.Succeeded || t.Result == nil || t.Result.Objective == nil || math.IsNaN(*t.Result.Objective) {
			continue
		}
		v := *t.Result.Objective
		if maximize {
			v = -v
		}
		atRung[k] = append(atRung[k], ranked{i, v})
	}
	var st Step
	var why []string
	for k := len(rungs) - 2; k >= 0; k-- {
		r := atRung[k]
		sort.SliceStable(r, func(a, b int) bool {
			if r[a].score != r[b].score {
				return r[a].score < r[b].score
			}
			return s.Trials[r[a].i].ID < s.Trials[r[b].i].ID
		})
		top := int(math.Floor(float64(len(r)) / eta))
		for rank, x := range r[:top] {
			t := &s.Trials[x.i]
			v, err := s.Spec.Variant(t.Params, map[string]any{fidelity: rungs[k+1]}, t.Seed)
			if err != nil {
				return Step{}, err
			}
			if ids[v.ID] {
				continue
			}
			ids[v.ID] = true
			st.Add = append(st.Add, v)
			if cont {
				if st.Continue == nil {
					st.Continue = map[string]string{}
				}
				st.Continue[v.ID] = t.ID
			}
			obj := x.score
			if maximize {
				obj = -obj
			}
			why = append(why, fmt.Sprintf("trial %s ranks %d of %d at %s=%g (%s %.5g; the best %d go on) and is promoted to %s=%g",
				t.ID, rank+1, len(r), fidelity, rungs[k], s.Objective, obj, top, fidelity, rungs[k+1]))
		}
	}
	if len(st.Add) > 0 {
		st.decide(name+": "+strings.Join(why, "; "), nil)
		return st, nil
	}
	if open > 0 {
		return Step{}, nil
	}
	var counts []string
	for k, r := range atRung {
		counts = append(counts, fmt.Sprintf("%d at %s=%g", len(r), fidelity, rungs[k]))
	}
	st.decide(fmt.Sprintf("%s: nothing left to promote (%s); the trials not promoted end at their rung", name, strings.Join(counts, ", ")), nil)
	return st, nil
}

// rungOf returns the index of t's fidelity among rungs, or -1.
func rungOf(t api.Trial, fidelity string, rungs []float64) int {
	f, ok := t.Params[fidelity].(float64)
	if !ok {
		return -1
	}
	for k, r := range rungs {
		if math.Abs(f-r) <= 1e-9*math.Max(f, r) {
			return k
		}
	}
	return -1
}
