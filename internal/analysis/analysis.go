// Package analysis turns a study's results into the fit its analysis plan
// asks for: it picks the points (the best run at each scale, over the tuned
// parameters), fits the law with bootstrap intervals, and certifies each
// point's best run against its one-step neighbours on the tuned axes, as
// "Pre-training under infinite compute" (Kim et al. 2025) requires before
// trusting a size's best run.
//
// The coordinator refits with it while a study runs; `asymptote dev` prints
// the same fit when the study finishes.
package analysis

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// Point is the best run at one scale of one group and seed.
type Point struct {
	Group string
	X     float64
	Seed  int64
	Trial api.Trial
	Obs   scaling.Obs
}

// Points picks the points of plan from trials: at each (group, x, seed),
// the succeeded trial with the best objective. It returns them by group,
// sorted by x then seed.
func Points(plan *sweep.FitPlan, trials []api.Trial, direction string) (map[string][]Point, error) {
	maximize := direction == string(sweep.Maximize)
	type key struct {
		group string
		x     float64
		seed  int64
	}
	best := map[key]api.Trial{}
	for _, t := range trials {
		if t.State != sweep.Succeeded || t.Result == nil || t.Result.Objective == nil {
			continue
		}
		x, ok := Lookup(t, plan.X)
		if !ok {
			return nil, fmt.Errorf("analysis.fit.x: trial %s has neither a parameter nor a metric %q", t.ID, plan.X)
		}
		k := key{x: x, seed: t.Seed}
		if plan.Group != "" {
			k.group = fmt.Sprint(t.Params[plan.Group])
		}
		b, seen := best[k]
		obj := *t.Result.Objective
		if !seen || (maximize && obj > *b.Result.Objective) || (!maximize && obj < *b.Result.Objective) {
			best[k] = t
		}
	}
	out := map[string][]Point{}
	for k, t := range best {
		o := scaling.Obs{X: k.x, Loss: *t.Result.Objective}
		o.N, _ = Lookup(t, "params")
		o.D, _ = Lookup(t, "tokens")
		o.U, _ = Lookup(t, "unique_tokens")
		out[k.group] = append(out[k.group], Point{Group: k.group, X: k.x, Seed: k.seed, Trial: t, Obs: o})
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool {
			if ps[i].X != ps[j].X {
				return ps[i].X < ps[j].X
			}
			return ps[i].Seed < ps[j].Seed
		})
	}
	return out, nil
}

// GroupNames returns the groups of Points' result in the order Run fits
// them: sorted.
func GroupNames(groups map[string][]Point) []string {
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	return names
}

// Lookup reads a numeric value of a trial by name: a metric the method
// reported wins over a parameter of the same name, since it is measured.
func Lookup(t api.Trial, name string) (float64, bool) {
	if t.Result != nil {
		if v, ok := t.Result.Metrics[name]; ok {
			return v, true
		}
	}
	if v, ok := t.Params[name].(float64); ok {
		return v, true
	}
	return 0, false
}

// Options tune a refit.
type Options struct {
	// Resamples caps the plan's bootstrap (0: the plan's own count).
	Resamples int
	// Workers bounds the cores a fit uses (0: all).
	Workers int
}

// Observations returns the points' observations, in their order.
func Observations(points []Point) []scaling.Obs {
	obs := make([]scaling.Obs, len(points))
	for i, p := range points {
		obs[i] = p.Obs
	}
	return obs
}

// FitOptions are the options a plan's law is fitted with. They are
// exported, with BootstrapOptions, so that `asymptote fit --study` fits a
// study exactly as the leader's refit does, seeds included, rather than
// repeat them.
func FitOptions(plan *sweep.FitPlan, o Options) scaling.Options {
	return scaling.Options{Seed: uint64(plan.Seed) + 1, Workers: o.Workers}
}

// BootstrapOptions are the options of a plan's bootstrap: the plan's count
// of resamples, capped at o.Resamples when that is set; Resamples 0 means
// no bootstrap.
func BootstrapOptions(plan *sweep.FitPlan, o Options) scaling.BootstrapOptions {
	resamples := plan.Bootstrap
	if o.Resamples > 0 && resamples > o.Resamples {
		resamples = o.Resamples
	}
	return scaling.BootstrapOptions{Resamples: resamples, Seed: uint64(plan.Seed) + 2, Workers: o.Workers}
}

// Fit fits the plan's law to one group's points and summarises it. A fit
// that cannot run yet (too few points) is a summary with Error set, not an
// error: a running study simply has not got there.
func Fit(ctx context.Context, plan *sweep.FitPlan, group string, points []Point, trials int, o Options) api.FitSummary {
	sum, _ := fitGroup(ctx, plan, group, points, trials, o)
	return sum
}

// fitGroup is Fit that also returns the fitted law, with its bootstrap
// when one ran; nil when the fit did not run or did not converge.
func fitGroup(ctx context.Context, plan *sweep.FitPlan, group string, points []Point, trials int, o Options) (api.FitSummary, *scaling.Fit) {
	sum := api.FitSummary{Group: group, Law: plan.Law, X: plan.X, Points: len(points), Trials: trials, Time: time.Now()}
	law, err := scaling.LawByName(plan.Law)
	if err != nil {
		sum.Error = err.Error()
		return sum, nil
	}
	obs := Observations(points)
	if err := scaling.Validate(law, obs); err != nil {
		sum.Error = err.Error()
		return sum, nil
	}
	fit, err := scaling.FitLaw(ctx, law, obs, FitOptions(plan, o))
	if err != nil {
		sum.Error = err.Error()
		return sum, nil
	}
	sum.Agree, sum.Starts = fit.Agree, fit.Starts
	if r2 := fit.Goodness.R2; finite(r2) {
		sum.R2 = &r2
	}
	for j, name := range fit.Names {
		if !finite(fit.Params[j]) {
			// JSON has no NaN or infinity, and a fit that reports one has
			// not found a law: say so instead of storing it.
			sum.Error = fmt.Sprintf("the fit did not converge: %s = %g; the points may not follow the law (is the objective constant?)", name, fit.Params[j])
			return sum, nil
		}
	}
	sum.Notes = fit.Warnings
	var boot *scaling.BootstrapResult
	if bo := BootstrapOptions(plan, o); bo.Resamples > 0 {
		boot, err = scaling.Bootstrap(ctx, fit, bo)
		if err != nil {
			sum.Notes = append(sum.Notes, "bootstrap: "+err.Error())
			boot = nil
		} else {
			sum.Notes = fit.Warnings
		}
	}
	for j, name := range fit.Names {
		p := api.FitParam{Name: name, Value: fit.Params[j]}
		if boot != nil && finite(boot.Intervals[j].Lo) && finite(boot.Intervals[j].Hi) {
			lo, hi := boot.Intervals[j].Lo, boot.Intervals[j].Hi
			p.Lo, p.Hi = &lo, &hi
		}
		sum.Params = append(sum.Params, p)
	}
	return sum, fit
}

// Certify checks each point's best run against its one-step neighbours on
// the plan's tuned parameters that are grid axes of spec: the run is
// uncertified when a neighbour has not succeeded (so it may yet beat it) or
// when it sits on the edge of the grid (so a value past the edge might).
func Certify(spec *sweep.Spec, plan *sweep.FitPlan, trials []api.Trial, points []Point) []api.Uncertified {
	axes := map[string][]any{}
	for _, a := range spec.Axes {
		axes[a.Name] = a.Values
	}
	// Index succeeded trials by their grid coordinates and seed.
	done := map[string]bool{}
	for _, t := range trials {
		if t.State == sweep.Succeeded {
			done[gridKey(spec, t.Params, t.Seed)] = true
		}
	}
	var out []api.Uncertified
	for _, p := range points {
		var reasons []string
		var edges []api.Edge
		for _, name := range plan.BestOver {
			values, ok := axes[name]
			if !ok || len(values) < 2 {
				continue
			}
			i := indexOf(values, p.Trial.Params[name])
			if i < 0 {
				continue
			}
			neighbourDone := func(j int) bool {
				nb := make(map[string]any, len(p.Trial.Params))
				for k, v := range p.Trial.Params {
					nb[k] = v
				}
				nb[name] = values[j]
				return done[gridKey(spec, nb, p.Seed)]
			}
			// Neighbours by value: an axis the coordinator extended has
			// its new values appended out of order.
			for _, j := range []int{innerIndex(values, i, true), innerIndex(values, i, false)} {
				if j >= 0 && !neighbourDone(j) {
					reasons = append(reasons, fmt.Sprintf("neighbour %s=%v has no result", name, values[j]))
				}
			}
			// Zero at the low end of a non-negative axis (no weight decay,
			// no dropout) is a natural bound, not an edge of the grid.
			if first, last := isEdge(values, i); (first && !atNaturalBound(values, i)) || last {
				reasons = append(reasons, fmt.Sprintf("%s=%v is the grid's %s value", name, values[i], map[bool]string{true: "last", false: "first"}[last]))
				inner := innerIndex(values, i, last) // toward the inside
				if inner >= 0 && neighbourDone(inner) {
					edges = append(edges, api.Edge{Axis: name, Last: last})
				}
			}
		}
		if len(reasons) > 0 {
			out = append(out, api.Uncertified{X: p.X, Seed: p.Seed, Trial: p.Trial.ID, Reason: strings.Join(reasons, "; "), Edges: edges})
		}
	}
	return out
}

func gridKey(spec *sweep.Spec, params map[string]any, seed int64) string {
	var b strings.Builder
	for _, a := range spec.Axes {
		fmt.Fprintf(&b, "%s=%v;", a.Name, params[a.Name])
	}
	fmt.Fprintf(&b, "seed=%d", seed)
	return b.String()
}

// isEdge reports whether values[i] is the smallest or largest of a numeric
// axis (by value, whatever order the spec gave), or the first or last of a
// non-numeric one.
func isEdge(values []any, i int) (first, last bool) {
	v, ok := values[i].(float64)
	if !ok {
		return i == 0, i == len(values)-1
	}
	first, last = true, true
	for _, x := range values {
		if f, ok := x.(float64); ok {
			first = first && f >= v
			last = last && f <= v
		}
	}
	return first && !last, last && !first
}

// atNaturalBound reports whether values[i] is 0 on an axis with no
// negative values.
func atNaturalBound(values []any, i int) bool {
	if v, ok := values[i].(float64); !ok || v != 0 {
		return false
	}
	for _, x := range values {
		if f, ok := x.(float64); ok && f < 0 {
			return false
		}
	}
	return true
}

// innerIndex returns the index of values[i]'s neighbour below it (below
// true) or above it, by value for a numeric axis and by position otherwise;
// -1 when there is none.
func innerIndex(values []any, i int, below bool) int {
	last := below
	v, ok := values[i].(float64)
	if !ok {
		j := i + 1
		if below {
			j = i - 1
		}
		if j < 0 || j >= len(values) {
			return -1
		}
		return j
	}
	best := -1
	for j, x := range values {
		f, ok := x.(float64)
		if !ok || j == i {
			continue
		}
		if last && f < v && (best < 0 || f > values[best].(float64)) {
			best = j
		}
		if !last && f > v && (best < 0 || f < values[best].(float64)) {
			best = j
		}
	}
	return best
}

func indexOf(values []any, v any) int {
	for i, x := range values {
		if x == v {
			return i
		}
	}
	return -1
}

// Run fits every group of plan and certifies its points.
func Run(ctx context.Context, spec *sweep.Spec, trials []api.Trial, direction string, o Options) ([]api.FitSummary, error) {
	groups, err := RunGroups(ctx, spec, trials, direction, o)
	out := make([]api.FitSummary, len(groups))
	for i, g := range groups {
		out[i] = g.Summary
	}
	return out, err
}

// Group is one group's fit: its summary, the points fitted, and the
// fitted law (nil when the fit did not run), for a caller that draws it.
type Group struct {
	Summary api.FitSummary
	Points  []Point
	Fit     *scaling.Fit
}

// RunGroups is Run with each group's points and fitted law.
func RunGroups(ctx context.Context, spec *sweep.Spec, trials []api.Trial, direction string, o Options) ([]Group, error) {
	plan := spec.Analysis.Fit
	groups, err := Points(plan, trials, direction)
	if err != nil {
		return nil, err
	}
	succeeded := 0
	for _, t := range trials {
		if t.State == sweep.Succeeded {
			succeeded++
		}
	}
	names := GroupNames(groups)
	out := make([]Group, 0, len(names))
	for _, g := range names {
		s, fit := fitGroup(ctx, plan, g, groups[g], succeeded, o)
		s.Uncert = Certify(spec, plan, trials, groups[g])
		out = append(out, Group{Summary: s, Points: groups[g], Fit: fit})
	}
	return out, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
