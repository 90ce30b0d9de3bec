// Package strategy holds the adaptive searches of a study as functions of
// its spec and its trial records: successive halving, the asymptote,
// crossover and degradation searches, the grid extension of an analysis
// plan, ASHA's rung table and the compute budget's accounting.
//
// Nothing here touches NATS, etcd or the clock: a strategy reads a
// snapshot of one study and returns what it decided, the trials or axis
// values to add, the trials not taken further, and the reason, and the
// leader coordinator applies that in one place. The same results always
// lead to the same decisions, so a resumed study decides as it would have,
// and every strategy is tested here without a cluster.
package strategy

import (
	"context"
	"math"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// Study is the snapshot of one study a strategy decides on.
type Study struct {
	Name string
	// Spec is the study's spec with its extensions applied.
	Spec *sweep.Spec
	// Objective and Direction are the study's (Direction "minimize" or
	// "maximize").
	Objective string
	Direction string
	// Trials are the study's trial records in expansion order.
	Trials []api.Trial
	// Extensions are the axis values added so far.
	Extensions []api.Extension
	// Analysis is the study's latest fit summary (the grid extension
	// reads its edges).
	Analysis []api.FitSummary
}

// maximize reports whether the study maximizes its objective.
func (s *Study) maximize() bool { return s.Direction == string(sweep.Maximize) }

// axis returns the spec's grid axis name (with any values added to it).
func (s *Study) axis(name string) sweep.Axis { return axisOf(s.Spec, name) }

// axisOf returns spec's grid axis name, or an empty axis of that name.
func axisOf(spec *sweep.Spec, name string) sweep.Axis {
	for _, a := range spec.Axes {
		if a.Name == name {
			return a
		}
	}
	return sweep.Axis{Name: name}
}

// extended counts the values added to the axis name so far.
func (s *Study) extended(name string) int {
	n := 0
	for _, x := range s.Extensions {
		if x.Axis == name {
			n++
		}
	}
	return n
}

// succeeded returns the records of the study's succeeded trials.
func (s *Study) succeeded() []api.Trial {
	var out []api.Trial
	for _, t := range s.Trials {
		if t.State == sweep.Succeeded {
			out = append(out, t)
		}
	}
	return out
}

// Step is what one step of a strategy decided. The zero Step adds nothing
// and records nothing: the search is over.
type Step struct {
	// Add holds new trials with the parameters given (halving's
	// promotions).
	Add []sweep.Trial
	// Continue maps a promoted trial's ID (in Add) to the trial of the
	// rung below that it continues from its last checkpoint, for a
	// search that continues promotions rather than restarting them.
	Continue map[string]string
	// Extend holds the axis values added, in order, each with its reason
	// (its Time is left for the leader to set); Spec is the spec with them
	// applied, whose expansion holds the new trials.
	Extend []api.Extension
	Spec   *sweep.Spec
	// Decision, when set, goes into the study's decision log. Its Added
	// is left for the leader: the number of trials the step added.
	Decision *api.Decision
	// Notes say what the step could not do, for the log.
	Notes []string
}

// More reports whether the step adds anything: a search whose step adds
// nothing is done.
func (s Step) More() bool { return len(s.Add) > 0 || s.Spec != nil }

// extend adds value to the step's axis name, recording why; it returns the
// error of a value the axis cannot take (one it already has).
func (st *Step) extend(base *sweep.Spec, x api.Extension) error {
	cur := st.Spec
	if cur == nil {
		cur = base
	}
	next, err := cur.Extend(x.Axis, x.Value)
	if err != nil {
		return err
	}
	st.Spec = next
	st.Extend = append(st.Extend, x)
	return nil
}

// decide sets the step's decision.
func (st *Step) decide(reason string, stopped []string) {
	st.Decision = &api.Decision{Reason: reason, Stopped: stopped}
}

// Next takes one step of the study's adaptive search (its spec's search
// section), deciding on the results of every trial. ASHA as early
// stopping, which decides while trials run, is the Rungs type instead, and
// takes no step here; promotion ASHA steps here, on what has finished.
func Next(ctx context.Context, s *Study) (Step, error) {
	g := s.Spec.Search
	switch {
	case g == nil:
		return Step{}, nil
	case g.Halving != nil:
		return Halving(s)
	case g.Asymptote != nil:
		return Asymptote(ctx, s)
	case g.Crossover != nil:
		return Crossover(ctx, s)
	case g.Degradation != nil:
		return Degradation(s)
	case g.ASHA != nil && g.ASHA.Promote:
		return Promote(s)
	case g.Hyperband != nil:
		return Hyperband(s)
	}
	return Step{}, nil
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

// side names the end of an axis a value lies past.
func side(last bool) string {
	if last {
		return "above the largest"
	}
	return "below the smallest"
}
