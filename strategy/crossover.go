package strategy

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// crossoverResamples is the bootstrap size of each group's fit in the
// crossover search; the seeds are fixed so the same results decide the
// same.
const crossoverResamples = 200

// Crossover is one step of the crossover search: it adds the axis value at
// the estimated crossing of the two groups' curves, with the cost of
// certainty's prediction of the interval after it (atEstimate), or decides
// it is done once the crossing is pinned down, ruled out, or the value
// budget is spent.
func Crossover(ctx context.Context, s *Study) (Step, error) {
	return crossover(ctx, s, atEstimate)
}

// crossingChooser picks the axis value to measure both groups at, given
// their fits, the crossing and its interval's measured ratio hi/lo, the
// axis and the runs a value adds per group; why says so in words.
type crossingChooser func(fits [2]*scaling.Fit, root scaling.Root, ratio float64, axis sweep.Axis, runs int) (x float64, why string, err error)

// atEstimate measures at the estimated crossing (3 significant digits), or
// at the geometric middle of it and the interval's upper end when that
// value was already run, and states the ratio the cost of certainty
// predicts after it (predictCrossing). Choosing instead the candidate
// predicted to narrow the interval most per unit of cost did worse on the
// synthetic recipes (docs/scaling.md): near the crossing every value is
// predicted to help about as much, so the cheapest wins, and the
// prediction of a 200-resample percentile interval of a root is too
// coarse to rank values 5 % apart.
func atEstimate(fits [2]*scaling.Fit, root scaling.Root, ratio float64, axis sweep.Axis, runs int) (float64, string, error) {
	x := roundSig(root.X, 3)
	if slices.Contains(axis.Values, any(x)) {
		x = roundSig(math.Sqrt(root.X*root.Interval.Hi), 3)
	}
	why := fmt.Sprintf("measuring both groups at %g", x)
	if pred, err := predictCrossing(fits, root, ratio, x, runs); err == nil {
		why += fmt.Sprintf(" (%d runs) is predicted to narrow it to %.3g×", 2*runs, pred)
	}
	return x, why, nil
}

// predictCrossing is the cost of certainty's prediction of the crossing's
// interval ratio after runs at x to each group
// (scaling.PredictCrossingRatio): the measured ratio raised to the ratio of
// log x*'s Wald widths after and before.
func predictCrossing(fits [2]*scaling.Fit, root scaling.Root, ratio, x float64, runs int) (float64, error) {
	add := make([]scaling.Obs, runs)
	for i := range add {
		add[i] = scaling.Obs{X: x}
	}
	now, after, err := scaling.PredictCrossingRatio(fits[0], fits[1], root.X, add, add, 0.95)
	if err != nil {
		return 0, err
	}
	if !(now > 1) {
		return 0, fmt.Errorf("the crossing's Wald interval has no width")
	}
	return math.Exp(math.Log(ratio) * math.Log(after) / math.Log(now)), nil
}

// crossover is Crossover with the value chosen by choose.
func crossover(ctx context.Context, s *Study, choose crossingChooser) (Step, error) {
	g := s.Spec.Search.Crossover
	plan := s.Spec.Analysis.Fit
	groups, err := analysis.Points(plan, s.succeeded(), s.Direction)
	if err != nil {
		return Step{}, err
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	var st Step
	done := func(reason string) (Step, error) {
		st.decide("crossover search: "+reason, nil)
		return st, nil
	}
	if len(names) != 2 {
		return done(fmt.Sprintf("needs exactly two groups of %s with results, has %d", plan.Group, len(names)))
	}
	var fits [2]*scaling.Fit
	for i, name := range names {
		var obs []scaling.Obs
		for _, p := range groups[name] {
			obs = append(obs, p.Obs)
		}
		if err := scaling.Validate(scaling.Power, obs); err != nil {
			return done(fmt.Sprintf("group %s=%s cannot be fitted yet: %v", plan.Group, name, err))
		}
		f, err := scaling.FitLaw(ctx, scaling.Power, obs, scaling.Options{Seed: 1})
		if err != nil {
			return Step{}, err
		}
		f.Bootstrap, err = scaling.Bootstrap(ctx, f, scaling.BootstrapOptions{Resamples: crossoverResamples, Seed: uint64(3 + i)})
		if err != nil {
			return Step{}, err
		}
		fits[i] = f
	}
	axis := s.axis(g.Axis)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range axis.Values {
		lo, hi = min(lo, v.(float64)), max(hi, v.(float64))
	}
	res, err := scaling.Crossovers(fits[0], fits[1], scaling.CrossoverOptions{Lo: lo, Hi: hi})
	if err != nil {
		return Step{}, err
	}
	if len(res.Roots) == 0 || res.PCount[0] > 0.5 {
		return done(fmt.Sprintf("the curves of %s and %s do not cross in [%g, %g] (P(no crossing) = %.2f); ruled out", names[0], names[1], lo, hi, res.PCount[0]))
	}
	root := res.Roots[0]
	ratio := root.Interval.Hi / root.Interval.Lo
	if ratio <= g.Ratio {
		return done(fmt.Sprintf("the curves cross at %s=%.4g, 95%% interval (%.4g, %.4g), within the target ratio %.3g; done", g.Axis, root.X, root.Interval.Lo, root.Interval.Hi, g.Ratio))
	}
	if s.extended(g.Axis) >= g.MaxValues {
		return done(fmt.Sprintf("the crossing's interval (%.4g, %.4g) is still %.3g× wide but the %d added values are spent", root.Interval.Lo, root.Interval.Hi, ratio, g.MaxValues))
	}
	x, why, err := choose(fits, root, ratio, axis, max(len(s.Spec.Seeds), 1))
	if err != nil {
		return done(fmt.Sprintf("the crossing's interval (%.4g, %.4g) is %.3g× wide (target %.3g), but %v", root.Interval.Lo, root.Interval.Hi, ratio, g.Ratio, err))
	}
	reason := fmt.Sprintf("the curves cross at %s=%.4g, 95%% interval (%.4g, %.4g) is %.3g× wide (target %.3g); %s", g.Axis, root.X, root.Interval.Lo, root.Interval.Hi, ratio, g.Ratio, why)
	if err := st.extend(s.Spec, api.Extension{By: "crossover", Axis: g.Axis, Value: x, Reason: reason}); err != nil {
		return done(fmt.Sprintf("cannot add %s=%g: %v", g.Axis, x, err))
	}
	st.decide("crossover search: "+reason, nil)
	return st, nil
}
