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
)

// crossoverResamples is the bootstrap size of each group's fit in the
// crossover search; the seeds are fixed so the same results decide the
// same.
const crossoverResamples = 200

// Crossover is one step of the crossover search: it adds the axis value at
// the estimated crossing of the two groups' curves, or decides it is done
// once the crossing is pinned down, ruled out, or the value budget is
// spent.
func Crossover(ctx context.Context, s *Study) (Step, error) {
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
	x := roundSig(root.X, 3)
	if slices.Contains(axis.Values, any(x)) {
		// Already measured there: narrow by measuring the interval's ends.
		x = roundSig(math.Sqrt(root.X*root.Interval.Hi), 3)
	}
	reason := fmt.Sprintf("the curves cross at %s=%.4g, 95%% interval (%.4g, %.4g) is %.3g× wide (target %.3g); measuring both groups at %g", g.Axis, root.X, root.Interval.Lo, root.Interval.Hi, ratio, g.Ratio, x)
	if err := st.extend(s.Spec, api.Extension{By: "crossover", Axis: g.Axis, Value: x, Reason: reason}); err != nil {
		return done(fmt.Sprintf("cannot add %s=%g: %v", g.Axis, x, err))
	}
	st.decide("crossover search: "+reason, nil)
	return st, nil
}
