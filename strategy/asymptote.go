package strategy

import (
	"context"
	"fmt"
	"math"
	"slices"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// asymptoteResamples is the bootstrap size of the search's width
// estimates; the seed is fixed so the same results give the same choice.
const asymptoteResamples = 100

// Asymptote is one step of the asymptote search: it adds the scale value
// predicted to narrow the asymptote's interval most per unit of cost, or
// decides it is done when the interval is narrow enough, the value budget
// is spent, or no candidate helps. The prediction is the cost of
// certainty's (certaintyWidth), and each decision states it.
func Asymptote(ctx context.Context, s *Study) (Step, error) {
	return asymptote(ctx, s, certaintyWidth)
}

// widthPredictor predicts the width of E's interval, cur wide on obs (fitted
// by fit), after adding the runs added.
type widthPredictor func(ctx context.Context, fit *scaling.Fit, obs []scaling.Obs, cur float64, added []scaling.Obs) (float64, error)

// certaintyWidth predicts from the Fisher information of the fit, before
// running anything: the measured width times the ratio of E's Wald
// interval widths after and before adding the runs (scaling.PredictWidth,
// a new run's noise being the fit's residual level). The ratio, not the
// Wald width itself, because the search's target is the bootstrap
// interval's width.
func certaintyWidth(_ context.Context, fit *scaling.Fit, _ []scaling.Obs, cur float64, added []scaling.Obs) (float64, error) {
	q, err := scaling.ParamQuantity(fit, "E")
	if err != nil {
		return 0, err
	}
	now, after, err := scaling.PredictWidth(fit, q, added, 0.95)
	if err != nil {
		return 0, err
	}
	if !(now > 0) || math.IsNaN(after) {
		return 0, fmt.Errorf("E's Wald interval is %g wide: nothing to scale", now)
	}
	return cur * after / now, nil
}

// asymptote is Asymptote with the width prediction predict.
func asymptote(ctx context.Context, s *Study, predict widthPredictor) (Step, error) {
	g := s.Spec.Search.Asymptote
	groups, err := analysis.Points(s.Spec.Analysis.Fit, s.succeeded(), s.Direction)
	if err != nil {
		return Step{}, err
	}
	var obs []scaling.Obs
	for _, p := range groups[""] {
		obs = append(obs, p.Obs)
	}
	fit, cur, err := eWidth(ctx, obs)
	if err != nil {
		return Step{}, err
	}
	var st Step
	if cur <= g.TargetWidth {
		st.decide(fmt.Sprintf("asymptote search: E's 95%% interval is %.4g wide, within the target %.4g; done", cur, g.TargetWidth), nil)
		return st, nil
	}
	if s.extended(g.Axis) >= g.MaxValues {
		st.decide(fmt.Sprintf("asymptote search: E's interval is %.4g wide (target %.4g) but the %d added values are spent", cur, g.TargetWidth, g.MaxValues), nil)
		return st, nil
	}
	axis := s.axis(g.Axis)
	type cand struct {
		x, width, score float64
		last            bool
	}
	var cands []cand
	sides := []bool{true}
	if g.Both {
		sides = append(sides, false)
	}
	runs := max(len(s.Spec.Seeds), 1)
	for _, last := range sides {
		x, ok := sweep.BeyondEdge(axis, last)
		if !ok || x <= 0 {
			continue
		}
		// A new value runs once per seed; its cost is the value (a model
		// size) per run.
		added := make([]scaling.Obs, runs)
		for i := range added {
			added[i] = scaling.Obs{X: x, N: x}
		}
		w, err := predict(ctx, fit, obs, cur, added)
		if err != nil {
			continue
		}
		cands = append(cands, cand{x: x, width: w, score: (cur - w) / (x * float64(runs)), last: last})
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	if len(cands) == 0 || cands[0].score <= 0 {
		st.decide(fmt.Sprintf("asymptote search: E's interval is %.4g wide (target %.4g) and no value past the grid is predicted to narrow it", cur, g.TargetWidth), nil)
		return st, nil
	}
	c := cands[0]
	reason := fmt.Sprintf("asymptote search: E's 95%% interval is %.4g wide (target %.4g); adding %s=%g (%s value, %d runs) is predicted to narrow it to %.4g, the most per unit of cost", cur, g.TargetWidth, g.Axis, c.x, side(c.last), runs, c.width)
	for _, o := range cands[1:] {
		reason += fmt.Sprintf("; %s=%g (%s value) to %.4g", g.Axis, o.x, side(o.last), o.width)
	}
	if err := st.extend(s.Spec, api.Extension{By: "asymptote", Axis: g.Axis, Value: c.x, Last: c.last, Reason: reason}); err != nil {
		return Step{}, err
	}
	st.decide(reason, nil)
	return st, nil
}

// eWidth fits the power law to obs and returns the fit and the width of
// E's 95% bootstrap interval.
func eWidth(ctx context.Context, obs []scaling.Obs) (*scaling.Fit, float64, error) {
	if err := scaling.Validate(scaling.Power, obs); err != nil {
		return nil, 0, err
	}
	fit, err := scaling.FitLaw(ctx, scaling.Power, obs, scaling.Options{Seed: 1})
	if err != nil {
		return nil, 0, err
	}
	b, err := scaling.Bootstrap(ctx, fit, scaling.BootstrapOptions{Resamples: asymptoteResamples, Seed: 2})
	if err != nil {
		return nil, 0, err
	}
	iv, _ := b.Interval(fit, "E")
	w := iv.Hi - iv.Lo
	if math.IsNaN(w) {
		return nil, 0, fmt.Errorf("no interval for E")
	}
	return fit, w, nil
}
