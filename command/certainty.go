package command

import (
	"fmt"
	"io"
	"strings"

	"asymptote.dev/asymptote/scaling"
)

type certaintyJSON struct {
	Param   string         `json:"param"`
	Level   jnum           `json:"level"`
	Width   jnum           `json:"width"`
	Target  jnum           `json:"target"`
	Reached bool           `json:"reached"`
	Cost    jnum           `json:"cost"`
	Runs    []addedRunJSON `json:"runs"`
	Widths  []jnum         `json:"widths"`
}

type addedRunJSON struct {
	At    string `json:"at"`
	Count int    `json:"count"`
}

// costOfCertainty answers --certainty NAME=WIDTH over --candidates.
func (cmd *fitCommand) costOfCertainty(fit *scaling.Fit) (*certaintyJSON, error) {
	if cmd.certainty == "" || cmd.candidates == "" {
		return nil, usagef("--certainty NAME=WIDTH and --candidates POINTS go together")
	}
	goal, err := parseAssignments(cmd.certainty)
	if err != nil || len(goal) != 1 {
		return nil, usagef("--certainty: want one NAME=WIDTH, got %q", cmd.certainty)
	}
	var name string
	var width float64
	for k, v := range goal {
		name, width = k, v
	}
	q, err := scaling.ParamQuantity(fit, name)
	if err != nil {
		return nil, usagef("--certainty: %v", err)
	}
	cands, err := parsePoints(fit.Law, cmd.candidates)
	if err != nil {
		return nil, usagef("--candidates: %v", err)
	}
	plan, err := scaling.CostOfCertainty(fit, q, scaling.CostOptions{Candidates: cands, Target: width, Level: cmd.fit.level})
	if err != nil {
		return nil, usagef("--certainty: %v", err)
	}
	j := &certaintyJSON{Param: name, Level: jnum(cmd.fit.level), Width: jnum(plan.Width), Target: jnum(width),
		Reached: plan.Reached, Cost: jnum(plan.Cost)}
	counts := map[string]int{}
	for _, o := range plan.Added {
		at := pointLabel(fit.Law, o)
		if counts[at] == 0 {
			j.Runs = append(j.Runs, addedRunJSON{At: at})
		}
		counts[at]++
	}
	for i := range j.Runs {
		j.Runs[i].Count = counts[j.Runs[i].At]
	}
	for _, w := range plan.Widths {
		j.Widths = append(j.Widths, jnum(w))
	}
	return j, nil
}

// printCertainty prints the plan of added runs.
func (r *fitReport) printCertainty(w io.Writer) {
	c := r.Certainty
	if c == nil {
		return
	}
	pct := int(float64(c.Level)*100 + 0.5)
	fmt.Fprintf(w, "\ncost of certainty: %s's %d%% Wald interval is %s wide; target %s\n", c.Param, pct, num(float64(c.Width)), num(float64(c.Target)))
	if len(c.Runs) == 0 {
		fmt.Fprintln(w, "  already within the target: no runs to add")
		return
	}
	var runs []string
	for _, a := range c.Runs {
		runs = append(runs, fmt.Sprintf("%d at %s", a.Count, a.At))
	}
	last := c.Widths[len(c.Widths)-1]
	verdict := "reaches"
	if !c.Reached {
		verdict = "does not reach (the run limit stopped the search)"
	}
	fmt.Fprintf(w, "  add %s (cost %s, in units of the scale): width %s, which %s the target\n", strings.Join(runs, ", "), num(float64(c.Cost)), num(float64(last)), verdict)
	fmt.Fprintln(w, "  (predicted from the Fisher information with the current residual noise; an L1-like Huber fit's real width runs about 15 % wider)")
}
