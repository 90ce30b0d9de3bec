package coordinator

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// searchSteps advances the adaptive search of every active study whose
// trials have all finished: it adds the next values the results call for,
// or, when there is nothing left to add, lets the study finish. Deciding
// only when every trial is done makes each decision a function of the spec
// and the results alone, so a resumed study decides the same.
func (l *leader) searchSteps(ctx context.Context, now time.Time) {
	for _, s := range l.order {
		if s.spec.Search == nil || s.rec.State != api.StudyActive || !s.terminal() || s.searchDone {
			continue
		}
		if b := s.spec.Budget; b != nil && s.used >= b.Limit() {
			l.log.Info("search stops: the budget is spent", "study", s.rec.Name, "used", s.used, "limit", b.Limit())
			s.searchDone = true
			l.maybeFinish(s, now)
			continue
		}
		var added bool
		var err error
		switch {
		case s.spec.Search.Halving != nil:
			added, err = l.halvingStep(ctx, s, now)
		case s.spec.Search.Asymptote != nil:
			added, err = l.asymptoteStep(ctx, s, now)
		case s.spec.Search.Crossover != nil:
			added, err = l.crossoverStep(ctx, s, now)
		default:
			added, err = l.degradationStep(ctx, s, now)
		}
		if err != nil {
			l.log.Error("adaptive search", "study", s.rec.Name, "error", err)
		}
		if !added {
			s.searchDone = true
			l.maybeFinish(s, now)
		}
	}
}

// degradationStep adds the values a degradation search needs next.
func (l *leader) degradationStep(ctx context.Context, s *study, now time.Time) (bool, error) {
	g := s.spec.Search.Degradation
	if g == nil {
		return false, nil
	}
	var obs []scaling.Obs
	for _, t := range s.trials {
		if t.rec.State != sweep.Succeeded || t.rec.Result == nil || t.rec.Result.Objective == nil {
			continue
		}
		x, ok := analysis.Lookup(t.rec, g.Axis)
		if !ok {
			continue
		}
		o := scaling.Obs{Loss: *t.rec.Result.Objective}
		o.N, _ = analysis.Lookup(t.rec, "params")
		o.U, _ = analysis.Lookup(t.rec, "unique_tokens")
		// The searched axis plays the role of epochs: D = x·U.
		o.D = x * o.U
		if o.N <= 0 || o.U <= 0 {
			// Without the accounting, epochs are the axis itself.
			o.N, o.U, o.D = 1, 1, x
		}
		obs = append(obs, o)
	}
	if len(obs) == 0 {
		return false, nil
	}
	rep, err := scaling.EpochAnalysis(obs, scaling.EpochOptions{NoiseFloor: g.Noise})
	if err != nil {
		return false, err
	}
	added := s.extended(g.Axis)
	var next []float64
	var reasons []string
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
				mid := math.Sqrt(prev * ser.Degrades)
				next = append(next, mid)
				reasons = append(reasons, fmt.Sprintf("the loss rose more than %.2g·σ (σ=%.3g) between %s=%g and %g; bisecting", rep.Z, rep.Sigma, g.Axis, prev, ser.Degrades))
			}
		case ser.Best == pts[len(pts)-1].Epochs:
			last := pts[len(pts)-1].Epochs
			next = append(next, 2*last)
			reasons = append(reasons, fmt.Sprintf("the loss still falls at the largest %s=%g; doubling", g.Axis, last))
		}
	}
	sort.Float64s(next)
	changed := false
	for i, v := range next {
		if added >= g.MaxValues {
			l.log.Info("degradation search stopped at its value budget", "study", s.rec.Name, "max_values", g.MaxValues)
			break
		}
		v = roundSig(v, 3)
		spec, err := s.spec.Extend(g.Axis, v)
		if err != nil {
			continue // already present: a bracket shared by two series
		}
		s.rec.Extensions = append(s.rec.Extensions, api.Extension{By: "degradation", Axis: g.Axis, Value: v, Reason: "degradation search: " + reasons[i], Time: now})
		s.setSpec(spec)
		added++
		changed = true
		l.log.Info("degradation search adds a value", "study", s.rec.Name, "axis", g.Axis, "value", v, "reason", reasons[i])
	}
	if !changed {
		return false, nil
	}
	return true, l.expand(ctx, s, now)
}

// roundSig rounds x to n significant digits, so bisected values read well
// (5.66, not 5.656854249).
func roundSig(x float64, n int) float64 {
	if x == 0 {
		return 0
	}
	p := math.Pow(10, float64(n)-math.Ceil(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

// decide records one step of a study's adaptive search with its reason.
func (l *leader) decide(s *study, now time.Time, reason string, added int, stopped []string) {
	s.rec.Decisions = append(s.rec.Decisions, api.Decision{Time: now, Reason: reason, Added: added, Stopped: stopped})
	l.log.Info("adaptive search decided", "study", s.rec.Name, "reason", reason, "added", added)
}
