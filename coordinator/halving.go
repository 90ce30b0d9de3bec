package coordinator

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"asymptote.dev/asymptote/sweep"
)

// halvingStep promotes the best configurations of the highest finished
// rung to the next fidelity, or reports false when the last rung is done.
func (l *leader) halvingStep(ctx context.Context, s *study, now time.Time) (bool, error) {
	h := s.spec.Search.Halving
	derived := map[string]bool{}
	for _, d := range s.spec.Derived {
		derived[d.Name] = true
	}
	// The current rung is the highest fidelity any trial has.
	rung := 0.0
	for _, t := range s.trials {
		if f, ok := t.rec.Params[h.Fidelity].(float64); ok && f > rung {
			rung = f
		}
	}
	next := rung * h.Eta
	if next > h.Max*(1+1e-9) {
		return false, nil
	}
	type config struct {
		key    string
		trials []*trial
		score  float64
	}
	byKey := map[string]*config{}
	for _, t := range s.trials {
		if f, _ := t.rec.Params[h.Fidelity].(float64); f != rung {
			continue
		}
		k := configKey(t.rec.Params, h.Fidelity, derived)
		c := byKey[k]
		if c == nil {
			c = &config{key: k}
			byKey[k] = c
		}
		c.trials = append(c.trials, t)
	}
	maximize := s.rec.Direction == string(sweep.Maximize)
	configs := make([]*config, 0, len(byKey))
	for _, c := range byKey {
		sum, n := 0.0, 0
		for _, t := range c.trials {
			if t.rec.State == sweep.Succeeded && t.rec.Result != nil && t.rec.Result.Objective != nil {
				sum += *t.rec.Result.Objective
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
	var add []sweep.Trial
	var stopped []string
	for i, c := range configs {
		if i >= keep || math.IsInf(c.score, 1) {
			for _, t := range c.trials {
				stopped = append(stopped, t.rec.ID)
			}
			continue
		}
		for _, t := range c.trials {
			v, err := s.spec.Variant(t.rec.Params, map[string]any{h.Fidelity: next}, t.rec.Seed)
			if err != nil {
				return false, err
			}
			add = append(add, v)
		}
	}
	if len(add) == 0 {
		return false, nil
	}
	cut := configs[min(keep, len(configs))-1].score
	if maximize {
		cut = -cut
	}
	reason := fmt.Sprintf("successive halving: rung %s=%g finished; promoted the best %d of %d configurations (mean %s over seeds, cut at %.5g) to %s=%g; the other %d stop here",
		h.Fidelity, rung, keep, len(configs), s.rec.Objective, cut, h.Fidelity, next, len(configs)-keep)
	l.decide(s, now, reason, len(add), stopped)
	return true, l.addTrials(ctx, s, add, now)
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
