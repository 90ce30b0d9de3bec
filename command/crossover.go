package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"asymptote.dev/asymptote/internal/scalingplot"
	"asymptote.dev/asymptote/scaling"
)

// crossoverCommand is `asymptote crossover`.
type crossoverCommand struct {
	invocation
	scalingFlags
	versus, rng   string
	noise, target float64
	names, plot   string
	multiplier    string
	dataMult      string
	gate          float64
	certainty     float64
	crossing      float64
	candidates    string
}

// flags declares crossover's flags.
func (cmd *crossoverCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "crossover", "(--data A.csv --versus B.csv | --study A --study B | --study A --versus B.csv | --study S) --range LO:HI [flags]")
	cmd.scalingFlags.register(fs, "params", "power")
	cmd.data.registerPlan(fs)
	fs.StringVar(&cmd.versus, "versus", "", "CSV `FILE` of the second recipe (same columns as --data)")
	fs.StringVar(&cmd.rng, "range", "", "search range `LO:HI` of the scale variable (compute for chinchilla laws)")
	fs.Float64Var(&cmd.noise, "noise", scaling.DefaultNoiseFloor, "seed-noise `LEVEL` of the loss for the within-noise flag")
	fs.Float64Var(&cmd.target, "target", 0, "report P(first curve lower) at this `SCALE`")
	fs.StringVar(&cmd.names, "names", "", "labels of the two recipes `A,B` (default: the studies' names or groups' values)")
	fs.StringVar(&cmd.plot, "plot", "", "write a plot to `FILE`.png or FILE.svg (with --multiplier, also the multiplier to FILE-multiplier.png)")
	fs.StringVar(&cmd.multiplier, "multiplier", "", "compute multiplier of the second recipe over the first at these scales `X,...` (compute for chinchilla laws): the first needs m times the second's compute for the same loss")
	fs.StringVar(&cmd.dataMult, "data-multiplier", "", "data multiplier at `POINTS` N:D (chinchilla) or N:D:U (datablations), comma-separated: at the same N (and U) the first recipe needs m times the second's tokens for the same loss")
	fs.Float64Var(&cmd.certainty, "certainty", 0, "cost of certainty: the cheapest runs from --candidates, to either recipe, that narrow the interval of the multiplier at the first --multiplier scale to `WIDTH`")
	fs.Float64Var(&cmd.crossing, "crossing-certainty", 0, "cost of certainty: the cheapest runs from --candidates, to either recipe, that narrow the first crossing's interval to hi/lo at most `RATIO` (above 1, such as 1.5)")
	fs.StringVar(&cmd.candidates, "candidates", "", "with --certainty or --crossing-certainty: the runs that may be added, `POINTS` as fit --at takes them, each priced at its scale")
	fs.Float64Var(&cmd.gate, "gate", 0, "with --multiplier and --bootstrap: answer yes, no or undecided to \"is m above `G`\" at --level confidence")
	return fs
}

// Run runs the command.
func (cmd *crossoverCommand) Run(ctx context.Context) error {
	ctx, err := cmd.parseWith(ctx, &cmd.invocation, cmd.flags())
	if err != nil {
		return err
	}
	lohi, err := parseFloats(strings.ReplaceAll(cmd.rng, ":", ","))
	if err != nil || len(lohi) != 2 {
		return usagef("--range: want LO:HI, got %q", cmd.rng)
	}
	recipes, err := crossoverRecipes(ctx, &cmd.data, &cmd.fit, cmd.versus)
	if err != nil {
		return err
	}
	label, err := cmd.labels(recipes)
	if err != nil {
		return err
	}
	fits, err := fitRecipes(ctx, recipes, label)
	if err != nil {
		return err
	}
	r, err := scaling.Crossovers(fits[0], fits[1], scaling.CrossoverOptions{Lo: lohi[0], Hi: lohi[1], Noise: cmd.noise, Target: cmd.target})
	if err != nil {
		return err
	}
	if cmd.plot != "" {
		if err := scalingplot.Crossover(cmd.plot, fits[0], fits[1], r, scalingplot.Options{XLabel: recipes[0].x, Names: label}); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	rep := cmd.report(recipes, fits, r, label, lohi)
	if rep.Crossing, err = cmd.crossingCertainty(fits, r); err != nil {
		return err
	}
	if rep.Multiplier, err = cmd.multipliers(fits); err != nil {
		return err
	}
	if cmd.plot != "" && rep.Multiplier != nil {
		file := groupFile(cmd.plot, "multiplier")
		if err := scalingplot.Multiplier(file, fits[0], fits[1], cmd.gate, scalingplot.Options{XLabel: recipes[0].x, Names: label}); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	if cmd.format == "json" {
		return writeJSON(cmd.env.Stdout, rep)
	}
	cmd.printTable(cmd.env.Stdout, rep)
	return nil
}

// labels names the two recipes: by --names, or by the studies or groups
// they were read from, or A and B.
func (cmd *crossoverCommand) labels(recipes [2]curve) ([2]string, error) {
	label := [2]string{"A", "B"}
	for k, c := range recipes {
		if c.label != "" {
			label[k] = c.label
		}
	}
	if cmd.names != "" {
		n := strings.SplitN(cmd.names, ",", 2)
		if len(n) != 2 {
			return label, usagef("--names: want A,B")
		}
		label = [2]string{n[0], n[1]}
	}
	return label, nil
}

// fitRecipes fits both recipes, which must be fitted alike to be
// compared.
func fitRecipes(ctx context.Context, recipes [2]curve, label [2]string) ([2]*scaling.Fit, error) {
	var fits [2]*scaling.Fit
	if a, b := recipes[0], recipes[1]; a.law != b.law || a.x != b.x {
		return fits, usagef("the recipes are fitted differently (%s: %s law over %s; %s: %s law over %s); pass --law and --x to fit both alike",
			label[0], a.law.Name(), a.x, label[1], b.law.Name(), b.x)
	}
	for k, c := range recipes {
		f, err := c.fit(ctx)
		if err != nil {
			return fits, fmt.Errorf("%s: %w", label[k], err)
		}
		fits[k] = f
	}
	return fits, nil
}

// report is the crossings r of the recipes' fits, as the JSON output
// has them and the table prints them.
func (cmd *crossoverCommand) report(recipes [2]curve, fits [2]*scaling.Fit, r *scaling.CrossoverResult, label [2]string, lohi []float64) *crossoverJSON {
	rep := &crossoverJSON{Names: label[:], Range: []jnum{jnum(lohi[0]), jnum(lohi[1])},
		Fits:       []*fitReport{newFitReport(fits[0], recipes[0].dropped), newFitReport(fits[1], recipes[1].dropped)},
		Replicates: r.Replicates, MaxGap: jnum(r.MaxGap), WithinNoise: r.WithinNoise}
	for k, f := range rep.Fits {
		f.Residuals = nil
		f.Plan = recipes[k].plan
	}
	for _, root := range r.Roots {
		rj := rootJSON{X: jnum(root.X), Extrapolated: root.Extrapolated}
		if r.Replicates > 0 {
			rj.CI = jivl(root.Interval)
		}
		rep.Roots = append(rep.Roots, rj)
	}
	if r.Replicates > 0 {
		rep.P = []jnum{jnum(r.PCount[0]), jnum(r.PCount[1]), jnum(r.PCount[2]), jnum(r.PCount[3])}
		if cmd.target > 0 {
			p := jnum(r.PFirstBelow)
			rep.PFirstBelow = &p
		}
	}
	return rep
}

// printTable prints the report: each recipe's fit, then the crossings
// and, with a bootstrap, their probabilities.
func (cmd *crossoverCommand) printTable(w io.Writer, rep *crossoverJSON) {
	label := rep.Names
	for k, f := range rep.Fits {
		fmt.Fprintf(w, "== %s ==\n", label[k])
		f.printTable(w, false)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "crossings of %s and %s in [%s, %s]: %d\n", label[0], label[1], num(float64(rep.Range[0])), num(float64(rep.Range[1])), len(rep.Roots))
	for i, root := range rep.Roots {
		line := fmt.Sprintf("  root %d at %s", i+1, num(float64(root.X)))
		if root.CI != nil {
			line += fmt.Sprintf(", %d%% CI (%s, %s)", int(cmd.fit.level*100+0.5), num(float64(root.CI[0])), num(float64(root.CI[1])))
		}
		if root.Extrapolated {
			line += ", extrapolated (outside the observed range)"
		}
		fmt.Fprintln(w, line)
	}
	if len(rep.Roots) > 0 {
		fmt.Fprintf(w, "largest gap between the curves across the crossing(s): %s", num(float64(rep.MaxGap)))
		if rep.WithinNoise {
			fmt.Fprintf(w, " (within seed noise %s: the crossing is not resolved)", num(cmd.noise))
		}
		fmt.Fprintln(w)
	}
	if c := rep.Crossing; c != nil {
		fmt.Fprintf(w, "cost of certainty: the crossing at %s has a %d%% Wald interval %s× wide (hi/lo); target %s×: ",
			num(float64(c.X)), int(cmd.fit.level*100+0.5), num(float64(c.Ratio)), num(float64(c.Target)))
		printPlan(w, c.Runs, rep.Names, c.Reached, float64(c.Cost), "ratio "+num(float64(c.After))+"×")
	}
	defer cmd.printMultiplier(w, rep)
	if rep.Replicates == 0 {
		fmt.Fprintln(w, "no intervals: pass --bootstrap N for crossing probabilities and root intervals")
		return
	}
	p := rep.P
	fmt.Fprintf(w, "paired bootstrap (%d replicates): P(0 crossings) %.3f, P(1) %.3f, P(2) %.3f, P(3+) %.3f\n",
		rep.Replicates, float64(p[0]), float64(p[1]), float64(p[2]), float64(p[3]))
	if rep.PFirstBelow != nil {
		fmt.Fprintf(w, "P(%s below %s at %s) = %.3f\n", label[0], label[1], num(cmd.target), float64(*rep.PFirstBelow))
	}
}

// crossoverRecipes reads the two recipes: --data A.csv (or one --study A)
// and --versus B.csv; two studies, --study A --study B or --study A,B; or
// one study whose analysis plan has a group of two values, one recipe
// each. A study with a plan given by --spec is fitted by it, as status
// shows it.
func crossoverRecipes(ctx context.Context, df *dataFlags, ff *fitFlags, versus string) ([2]curve, error) {
	var out [2]curve
	const want = "want two recipes: --data A.csv --versus B.csv, --study A --versus B.csv, --study A --study B, or one --study whose analysis plan has a group with two values"
	studies := df.studies
	switch {
	case len(studies) > 2:
		return out, usagef("--study: crossover compares two studies, got %d (%s)", len(studies), strings.Join(studies, ", "))
	case len(studies) == 2 && (versus != "" || df.data != ""):
		return out, usagef("--study: two studies are the two recipes; drop --data and --versus")
	case len(studies) == 0 && versus == "":
		return out, usagef("%s", want)
	}
	var sources [][2]string // file, study
	switch {
	case len(studies) == 2:
		sources = [][2]string{{"", studies[0]}, {"", studies[1]}}
	case versus != "":
		first := ""
		if len(studies) == 1 {
			first = studies[0]
		}
		sources = [][2]string{{df.data, first}, {versus, ""}}
	default:
		sources = [][2]string{{df.data, studies[0]}}
	}
	var all []curve
	for k, src := range sources {
		cs, err := df.curves(ctx, ff, src[0], src[1])
		if err != nil {
			return out, err
		}
		for _, c := range cs {
			if c.plan == nil {
				// Each recipe resamples from its own stream.
				c.boot.Seed += uint64(k)
			}
			all = append(all, c)
		}
		if len(sources) > 1 && len(cs) != 1 {
			return out, usagef("study %s: its analysis plan has %d groups of %s (%s); compare two of them with --study %s alone, when it has two, or compare studies without groups", src[1], len(cs), cs[0].plan.Group, curveLabels(cs), src[1])
		}
	}
	if len(all) != 2 {
		var why string
		switch p := all[0].plan; {
		case p == nil:
			why = fmt.Sprintf("study %s read without its analysis plan is one recipe (--spec gives the plan)", studies[0])
		case p.Group == "":
			why = fmt.Sprintf("study %s's analysis plan has no group, so it is one recipe", studies[0])
		default:
			why = fmt.Sprintf("study %s's analysis plan has %d groups of %s with results (%s)", studies[0], len(all), p.Group, curveLabels(all))
		}
		return out, usagef("%s; %s", why, want)
	}
	return [2]curve{all[0], all[1]}, nil
}

func curveLabels(cs []curve) string {
	var ls []string
	for _, c := range cs {
		ls = append(ls, c.label)
	}
	return strings.Join(ls, ", ")
}

type crossoverJSON struct {
	Names       []string     `json:"names"`
	Range       []jnum       `json:"range"`
	Fits        []*fitReport `json:"fits"`
	Roots       []rootJSON   `json:"roots"`
	Replicates  int          `json:"replicates"`
	P           []jnum       `json:"p_crossings,omitempty"`
	PFirstBelow *jnum        `json:"p_first_below,omitempty"`
	MaxGap      jnum         `json:"max_gap"`
	WithinNoise bool         `json:"within_noise"`
	Multiplier  *multJSON    `json:"multiplier,omitempty"`
	// Crossing is the plan of --crossing-certainty.
	Crossing *crossingCertaintyJSON `json:"crossing_certainty,omitempty"`
}

type rootJSON struct {
	X            jnum   `json:"x"`
	CI           []jnum `json:"ci,omitempty"`
	Extrapolated bool   `json:"extrapolated"`
}
