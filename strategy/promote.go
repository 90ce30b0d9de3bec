package strategy

import (
	"cmp"
	"fmt"
	"math"
	"slices"
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
	return promote(s, []bracket{{0, g.Rungs}}, g.Fidelity, g.Eta, g.Continue, "ASHA")
}

// Hyperband is one step of asynchronous Hyperband: Promote within each
// bracket, over the rungs from the bracket's first up, ranking a trial
// only among the trials of its bracket. Brackets come in order, each with
// its promotions as Promote orders them.
func Hyperband(s *Study) (Step, error) {
	h := s.Spec.Search.Hyperband
	bs := make([]bracket, h.Brackets)
	for b := range bs {
		bs[b] = bracket{b + 1, h.Rungs[b:]}
	}
	return promote(s, bs, h.Fidelity, h.Eta, h.Continue, "Hyperband")
}

// bracket is a set of trials promoted among themselves over its rungs.
type bracket struct {
	n     int // the trials' Bracket
	rungs []float64
}

// ranked is a trial ranked at its rung.
type ranked struct {
	i     int // index into Study.Trials
	score float64
}

// promote is Promote over brackets of trials; name names the search in
// its decisions.
func promote(s *Study, brackets []bracket, fidelity string, eta float64, cont bool, name string) (Step, error) {
	ids := make(map[string]bool, len(s.Trials))
	open := 0
	for _, t := range s.Trials {
		ids[t.ID] = true
		if !t.State.Terminal() {
			open++
		}
	}
	var st Step
	var why, counts []string
	for _, b := range brackets {
		atRung := rank(s, b, fidelity)
		prefix := ""
		if b.n > 0 {
			prefix = fmt.Sprintf("bracket %d: ", b.n)
		}
		for k := len(b.rungs) - 2; k >= 0; k-- {
			r := atRung[k]
			top := int(math.Floor(float64(len(r)) / eta))
			for place, x := range r[:top] {
				t := &s.Trials[x.i]
				v, err := s.Spec.VariantIn(t.Bracket, t.Params, map[string]any{fidelity: b.rungs[k+1]}, t.Seed)
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
				if s.maximize() {
					obj = -obj
				}
				why = append(why, fmt.Sprintf("%strial %s ranks %d of %d at %s=%g (%s %.5g; the best %d go on) and is promoted to %s=%g",
					prefix, t.ID, place+1, len(r), fidelity, b.rungs[k], s.Objective, obj, top, fidelity, b.rungs[k+1]))
			}
		}
		var c []string
		for k, r := range atRung {
			c = append(c, fmt.Sprintf("%d at %s=%g", len(r), fidelity, b.rungs[k]))
		}
		counts = append(counts, prefix+strings.Join(c, ", "))
	}
	if len(st.Add) > 0 {
		st.decide(name+": "+strings.Join(why, "; "), nil)
		return st, nil
	}
	if open > 0 {
		return Step{}, nil
	}
	st.decide(fmt.Sprintf("%s: nothing left to promote (%s); the trials not promoted end at their rung", name, strings.Join(counts, "; ")), nil)
	return st, nil
}

// rank returns the succeeded trials of bracket b at each of its rungs,
// best first (ties by ID).
func rank(s *Study, b bracket, fidelity string) [][]ranked {
	atRung := make([][]ranked, len(b.rungs))
	for i, t := range s.Trials {
		k := rungOf(t, fidelity, b.rungs)
		if k < 0 || t.Bracket != b.n || t.State != sweep.Succeeded || t.Result == nil || t.Result.Objective == nil || math.IsNaN(*t.Result.Objective) {
			continue
		}
		v := *t.Result.Objective
		if s.maximize() {
			v = -v
		}
		atRung[k] = append(atRung[k], ranked{i, v})
	}
	for _, r := range atRung {
		slices.SortFunc(r, func(a, c ranked) int {
			if n := cmp.Compare(a.score, c.score); n != 0 {
				return n
			}
			return strings.Compare(s.Trials[a.i].ID, s.Trials[c.i].ID)
		})
	}
	return atRung
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
