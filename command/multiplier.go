package command

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"asymptote.dev/asymptote/scaling"
)

// multipliers compares the second recipe with the first at --multiplier's
// scales, with --gate's answer; nil without --multiplier.
func (cmd *crossoverCommand) multipliers(fits [2]*scaling.Fit) (*multJSON, error) {
	if cmd.multiplier == "" && cmd.dataMult == "" {
		if cmd.certainty != 0 || (cmd.candidates != "" && cmd.crossing == 0) {
			return nil, usagef("--certainty WIDTH needs --candidates POINTS and a --multiplier scale")
		}
		if cmd.gate != 0 {
			return nil, usagef("--gate needs --multiplier X,... or --data-multiplier POINTS: where to decide")
		}
		return nil, nil
	}
	at, err := parseFloats(cmd.multiplier)
	if err != nil || (cmd.multiplier != "" && len(at) == 0) {
		return nil, usagef("--multiplier: want one or more scales X,..., got %q", cmd.multiplier)
	}
	var data []scaling.Obs
	if cmd.dataMult != "" {
		if law := fits[0].Law; law != scaling.Chinchilla && law != scaling.DataConstrained {
			return nil, usagef("--data-multiplier needs --law chinchilla or datablations (tokens as an input), not %s", law.Name())
		}
		if data, err = parsePoints(fits[0].Law, cmd.dataMult); err != nil {
			return nil, usagef("--data-multiplier: %v", err)
		}
	}
	if cmd.gate < 0 || math.IsNaN(cmd.gate) {
		return nil, usagef("--gate: want a positive multiplier such as 1.1, got %g", cmd.gate)
	}
	if cmd.gate > 0 && cmd.fit.bootstrap <= 0 {
		return nil, usagef("--gate decides from the paired bootstrap: pass --bootstrap N")
	}
	m, err := scaling.ComputeMultiplier(fits[0], fits[1], scaling.MultiplierOptions{At: at, Data: data, Gate: cmd.gate, Level: cmd.fit.level})
	if err != nil {
		return nil, usagef("--multiplier: %v", err)
	}
	j := &multJSON{EA: jnum(m.EA), EB: jnum(m.EB), Ratio: jnum(m.Ratio), Limit: jnum(m.Limit), LimitRule: m.LimitRule,
		LimitInf: math.IsInf(m.Limit, 1), Replicates: m.Replicates, Gate: jnum(cmd.gate), level: cmd.fit.level}
	if m.Replicates > 0 {
		j.RatioCI, j.LimitCI = jivl(m.RatioCI), jivl(m.LimitCI)
		p := jnum(m.PLower)
		j.PLower = &p
	}
	point := func(a scaling.MultiplierAt) multAtJSON {
		aj := multAtJSON{X: jnum(a.X), XB: jnum(a.XB), M: jnum(a.M), Extrapolated: a.Extrapolated, Decision: a.Decision}
		if m.Replicates > 0 {
			aj.CI = jivl(a.CI)
		}
		if cmd.gate > 0 {
			p := jnum(a.PAbove)
			aj.PAbove = &p
		}
		return aj
	}
	for _, a := range m.At {
		j.At = append(j.At, point(a))
	}
	for _, a := range m.Data {
		aj := point(a)
		aj.Point = pointLabel(fits[0].Law, a.Point)
		j.Data = append(j.Data, aj)
	}
	if j.Certainty, err = cmd.multiplierCertainty(fits, at); err != nil {
		return nil, err
	}
	return j, nil
}

// multiplierCertainty answers --certainty WIDTH over --candidates for the
// multiplier at the first --multiplier scale.
func (cmd *crossoverCommand) multiplierCertainty(fits [2]*scaling.Fit, at []float64) (*multCertaintyJSON, error) {
	if cmd.certainty == 0 && (cmd.candidates == "" || cmd.crossing != 0) {
		return nil, nil
	}
	if !(cmd.certainty > 0) || cmd.candidates == "" || len(at) == 0 {
		return nil, usagef("--certainty WIDTH needs --candidates POINTS and a --multiplier scale, and WIDTH must be positive")
	}
	cands, err := parsePoints(fits[0].Law, cmd.candidates)
	if err != nil {
		return nil, usagef("--candidates: %v", err)
	}
	plan, err := scaling.MultiplierCost(fits[0], fits[1], at[0], scaling.CostOptions{Candidates: cands, Target: cmd.certainty, Level: cmd.fit.level})
	if err != nil {
		return nil, usagef("--certainty: %v", err)
	}
	j := &multCertaintyJSON{X: jnum(at[0]), Width: jnum(plan.Width), Target: jnum(cmd.certainty), Reached: plan.Reached, Cost: jnum(plan.Cost),
		Runs: planRuns(fits[0].Law, plan)}
	j.After = j.Width
	if n := len(plan.Widths); n > 0 {
		j.After = jnum(plan.Widths[n-1])
	}
	return j, nil
}

// planRuns counts a two-recipe plan's added runs by recipe and point, in
// the order they are first added.
func planRuns(law scaling.Law, plan *scaling.CostPlan) []multRunJSON {
	var runs []multRunJSON
	counts := map[[2]string]int{}
	for i, o := range plan.Added {
		k := [2]string{fmt.Sprint(plan.Recipes[i]), pointLabel(law, o)}
		if counts[k] == 0 {
			runs = append(runs, multRunJSON{Recipe: plan.Recipes[i], At: k[1]})
		}
		counts[k]++
	}
	for i := range runs {
		runs[i].Count = counts[[2]string{fmt.Sprint(runs[i].Recipe), runs[i].At}]
	}
	return runs
}

// crossingCertainty answers --crossing-certainty RATIO over --candidates
// for the first crossing of r; nil without it.
func (cmd *crossoverCommand) crossingCertainty(fits [2]*scaling.Fit, r *scaling.CrossoverResult) (*crossingCertaintyJSON, error) {
	if cmd.crossing == 0 {
		return nil, nil
	}
	if !(cmd.crossing > 1) || cmd.candidates == "" {
		return nil, usagef("--crossing-certainty RATIO needs --candidates POINTS, and RATIO must be above 1, such as 1.5")
	}
	if len(r.Roots) == 0 {
		return nil, usagef("--crossing-certainty: the curves do not cross in --range, so there is no crossing to narrow")
	}
	cands, err := parsePoints(fits[0].Law, cmd.candidates)
	if err != nil {
		return nil, usagef("--candidates: %v", err)
	}
	x := r.Roots[0].X
	plan, err := scaling.CrossingCost(fits[0], fits[1], x, scaling.CostOptions{Candidates: cands, Target: cmd.crossing, Level: cmd.fit.level})
	if err != nil {
		return nil, usagef("--crossing-certainty: %v", err)
	}
	j := &crossingCertaintyJSON{X: jnum(x), Ratio: jnum(plan.Width), Target: jnum(cmd.crossing), Reached: plan.Reached, Cost: jnum(plan.Cost),
		Runs: planRuns(fits[0].Law, plan)}
	j.After = j.Ratio
	if n := len(plan.Widths); n > 0 {
		j.After = jnum(plan.Widths[n-1])
	}
	return j, nil
}

// printPlan ends a cost-of-certainty line: the runs to add with their
// cost and what they reach (after).
func printPlan(w io.Writer, runs []multRunJSON, names []string, reached bool, cost float64, after string) {
	var rs []string
	for _, r := range runs {
		rs = append(rs, fmt.Sprintf("%d at %s for %s", r.Count, r.At, names[r.Recipe]))
	}
	switch {
	case len(rs) == 0:
		fmt.Fprintln(w, "already within it")
	case reached:
		fmt.Fprintf(w, "add %s (cost %s): %s\n", strings.Join(rs, ", "), num(cost), after)
	default:
		fmt.Fprintf(w, "64 runs (%s, cost %s) reach only %s\n", strings.Join(rs, ", "), num(cost), after)
	}
}

// printMultiplier prints the compute multipliers, the ratio of asymptotes
// and the gate.
func (cmd *crossoverCommand) printMultiplier(w io.Writer, rep *crossoverJSON) {
	m := rep.Multiplier
	if m == nil {
		return
	}
	a, b := rep.Names[0], rep.Names[1]
	if len(m.At) > 0 {
		fmt.Fprintf(w, "\ncompute multiplier m = x/x_B, where %s reaches at x_B the loss %s reaches at x: %s needs m times %s's compute (m > 1: %s is better)\n", b, a, a, b, b)
		m.printPoints(w, "X", "X_B", m.At)
	}
	if len(m.Data) > 0 {
		fmt.Fprintf(w, "\ndata multiplier m = D/D_B at the same parameters (and unique tokens): %s needs m times %s's tokens for the same loss\n", a, b)
		m.printPoints(w, "N:D[:U]", "D_B", m.Data)
	}
	fmt.Fprintf(w, "asymptotes: %s %s, %s %s, ratio %s/%s %s", a, num(float64(m.EA)), b, num(float64(m.EB)), b, a, num(float64(m.Ratio)))
	if m.RatioCI != nil {
		fmt.Fprintf(w, " %s, P(%s's lower) %.3f", ivl(m.RatioCI), b, float64(*m.PLower))
	}
	fmt.Fprintln(w)
	limit := num(float64(m.Limit))
	if m.LimitCI != nil && !m.LimitInf && m.Limit != 0 {
		limit += " " + ivl(m.LimitCI)
	}
	fmt.Fprintf(w, "in the limit of large scale: m → %s (%s)\n", limit, m.LimitRule)
	if c := m.Certainty; c != nil {
		fmt.Fprintf(w, "cost of certainty: m(%s)'s Wald interval is %s wide; target %s: ", num(float64(c.X)), num(float64(c.Width)), num(float64(c.Target)))
		printPlan(w, c.Runs, rep.Names, c.Reached, float64(c.Cost), "width "+num(float64(c.After)))
	}
}

type multCertaintyJSON struct {
	X       jnum          `json:"x"`
	Width   jnum          `json:"width"`
	Target  jnum          `json:"target"`
	After   jnum          `json:"width_after"`
	Reached bool          `json:"reached"`
	Cost    jnum          `json:"cost"`
	Runs    []multRunJSON `json:"runs"`
}

// crossingCertaintyJSON is --crossing-certainty's plan: the crossing X,
// the ratio hi/lo of its Wald interval now and after the runs, the target.
type crossingCertaintyJSON struct {
	X       jnum          `json:"x"`
	Ratio   jnum          `json:"ratio"`
	Target  jnum          `json:"target"`
	After   jnum          `json:"ratio_after"`
	Reached bool          `json:"reached"`
	Cost    jnum          `json:"cost"`
	Runs    []multRunJSON `json:"runs"`
}

type multRunJSON struct {
	Recipe int    `json:"recipe"`
	At     string `json:"at"`
	Count  int    `json:"count"`
}

// printPoints prints one table of multipliers.
func (m *multJSON) printPoints(w io.Writer, xHead, xbHead string, pts []multAtJSON) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := fmt.Sprintf("%s\t%s\tM\t%d%% CI\tEXTRAPOLATED", xHead, xbHead, int(m.level*100+0.5))
	if m.Gate > 0 {
		head += fmt.Sprintf("\tP(M > %s)\tGATE", num(float64(m.Gate)))
	}
	fmt.Fprintln(tw, head)
	for _, r := range pts {
		x := num(float64(r.X))
		if r.Point != "" {
			x = r.Point
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%v", x, num(float64(r.XB)), num(float64(r.M)), ivl(r.CI), r.Extrapolated)
		if r.PAbove != nil {
			line += fmt.Sprintf("\t%.3f\t%s", float64(*r.PAbove), r.Decision)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

type multJSON struct {
	At []multAtJSON `json:"at"`
	// Data are the data multipliers (--data-multiplier).
	Data  []multAtJSON `json:"data,omitempty"`
	EA    jnum         `json:"asymptote_first"`
	EB    jnum         `json:"asymptote_second"`
	Ratio jnum         `json:"asymptote_ratio"`
	// RatioCI and PLower (P(the second's asymptote is lower)) come from
	// the paired replicates.
	RatioCI []jnum `json:"asymptote_ratio_ci,omitempty"`
	PLower  *jnum  `json:"p_second_lower,omitempty"`
	// Limit is null when infinite; LimitInf says so.
	Limit      jnum   `json:"limit"`
	LimitInf   bool   `json:"limit_infinite,omitempty"`
	LimitCI    []jnum `json:"limit_ci,omitempty"`
	LimitRule  string `json:"limit_rule"`
	Replicates int    `json:"replicates"`
	Gate       jnum   `json:"gate,omitempty"`
	// Certainty is the plan of --certainty.
	Certainty *multCertaintyJSON `json:"certainty,omitempty"`
	level     float64
}

type multAtJSON struct {
	// Point is the data multiplier's N:D[:U]; X is then its D.
	Point        string `json:"point,omitempty"`
	X            jnum   `json:"x"`
	XB           jnum   `json:"x_second"`
	M            jnum   `json:"multiplier"`
	CI           []jnum `json:"ci,omitempty"`
	Extrapolated bool   `json:"extrapolated"`
	PAbove       *jnum  `json:"p_above_gate,omitempty"`
	Decision     string `json:"gate,omitempty"`
}
