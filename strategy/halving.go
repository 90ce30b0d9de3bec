package strategy

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"asymptote.dev/asymptote/sweep"
)

// Halving is one step of synchronous successive halving: it promotes the
// best 1/Eta of the configurations of the highest rung (by their mean
// objective over seeds) to Eta times its fidelity, and stops the others
// there. It adds nothing once the next rung would pass the search's Max,
// or when no configuration of the rung has a result.
func Halving(s *Study) (Step, error) {
	h := s.Spec.Search.Halving
	derived := map[string]bool{}
	for _, d := range s.Spec.Derived {
		derived[d.Name] = true
	}
	// The current rung is the highest fidelity any trial has.
	rung := 0.0
	for _, t := range s.Trials {
		if f, ok := t.Params[h.Fidelity].(float64); ok && f > rung {
			rung = f
		}
	}
	next := rung * h.Eta
	if next > h.Max*(1+1e-9) {
		return Step{}, nil
	}
	type config struct {
		key    string
		trials []int // indices into s.Trials
		score  float64
	}
	byKey := map[string]*config{}
	for i, t := range s.Trials {
		if f, _ := t.Params[h.Fidelity].(float64); f != rung {
			continue
		}
		k := configKey(t.Params, h.Fidelity, derived)
		c := byKey[k]
		if c == nil {
			c = &config{key: k}
			byKey[k] = c
		}
		c.trials = append(c.trials, i)
	}
	maximize := s.maximize()
	configs := make([]*config, 0, len(byKey))
	for _, c := range byKey {
		sum, n := 0.0, 0
		for _, i := range c.trials {
			t := &s.Trials[i]
			if t.State == sweep.Succeeded && t.Result != nil && t.Result.Objective != nil {
				sum += *t.Result.Objective
				n++
			}
		}
		c.score = math.Inf(1)
		if n > 0 {
			c.score = sum / float64(n)
			if maximize {
				c.score = -c.score
			}
		}
		configs = append(configs, c)
	}
	sort.Slice(configs, func(i, j int) bool {
		if configs[i].score != configs[j].score {
			return configs[i].score < configs[j].score
		}
		return configs[i].key < configs[j].key
	})
	keep := int(math.Ceil(float64(len(configs)) / h.Eta))
	var st Step
	var stopped []string
	for i, c := range configs {
		if i >= keep || math.IsInf(c.score, 1) {
			for _, j := range c.trials {
				stopped = append(stopped, s.Trials[j].ID)
			}
			continue
		}
		for _, j := range c.trials {
			t := &s.Trials[j]
			v, err := s.Spec.Variant(t.Params, map[string]any{h.Fidelity: next}, t.Seed)
			if err != nil {
				return Step{}, err
			}
			st.Add = append(st.Add, v)
			if h.Continue {
				if st.Continue == nil {
					st.Continue = map[string]string{}
				}
				st.Continue[v.ID] = t.ID
			}
		}
	}
	if len(st.Add) == 0 {
		return Step{}, nil
	}
	cut := configs[min(keep, len(configs))-1].score
	if maximize {
		cut = -cut
	}
	st.decide(fmt.Sprintf("successive halving: rung %s=%g finished; promoted the best %d of %d configurations (mean %s over seeds, cut at %.5g) to %s=%g; the other %d stop here",
		h.Fidelity, rung, keep, len(configs), s.Objective, cut, h.Fidelity, next, len(configs)-keep), stopped)
	return st, nil
}

// configKey identifies a configuration: its parameters but the fidelity
// and what is derived from it.
func configKey(params map[string]any, fidelity string, derived map[string]bool) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != fidelity && !derived[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v;", k, params[k])
	}
	return b.String()
}
