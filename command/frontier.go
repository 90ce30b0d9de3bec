package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"asymptote.dev/asymptote/scaling"
)

// frontierCommand is `asymptote frontier`.
type frontierCommand struct {
	invocation
	scalingFlags
	budget, given string
	unique        float64
	approach      string
	tolerance     float64
	plot          string
	// curves and envelopeBudgets are approach 1's input and grid.
	curves          string
	envelopeBudgets int
}

// flags declares frontier's flags.
func (cmd *frontierCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "frontier", "--budget C,... (--data FILE.csv | --given NAME=VALUE,...) [flags]")
	cmd.scalingFlags.register(fs, "params", "chinchilla")
	fs.StringVar(&cmd.budget, "budget", "", "compute budgets in FLOP, `C,...`")
	fs.StringVar(&cmd.given, "given", "", "use these parameters instead of fitting: `NAME=VALUE,...` (E, A, B, alpha, beta; RD_star, RN_star for datablations)")
	fs.Float64Var(&cmd.unique, "unique", 0, "unique tokens `U`: also give the data-constrained allocation (datablations law)")
	fs.StringVar(&cmd.approach, "approach", "3", "Hoffmann et al.'s `APPROACHES`, comma-separated: 1 (the lower envelope of training curves, then power laws), 2 (IsoFLOP parabolas per budget, then power laws) and 3 (the parametric law); 1,2,3 compares them")
	fs.StringVar(&cmd.plot, "plot", "", "approach 1 or 2: write the envelope over the training curves, or the IsoFLOP parabolas with their minima, to `FILE`.png or FILE.svg")
	fs.StringVar(&cmd.curves, "curves", "", "approach 1: training curves `FILE`.csv: params, tokens (or compute) and loss at each step, --group naming the run (default: one curve per size), or `asymptote results STUDY -checkpoints --format csv` output; default --data, else the checkpoint records (or metric history) of --study")
	fs.IntVar(&cmd.envelopeBudgets, "envelope-budgets", 100, "approach 1: take the envelope at `K` log-spaced budgets where two or more curves overlap")
	fs.Float64Var(&cmd.tolerance, "flop-tolerance", 0.1, "approach 2: runs whose compute 6ND is within this relative `TOLERANCE` of a budget's smallest belong to it")
	return fs
}

// approaches reads --approach: which of Hoffmann et al.'s approaches to
// run.
func (cmd *frontierCommand) approaches() (one, two, three bool, err error) {
	for _, a := range strings.Split(cmd.approach, ",") {
		switch strings.TrimSpace(a) {
		case "1":
			one = true
		case "2":
			two = true
		case "3":
			three = true
		default:
			return false, false, false, usagef("--approach: want 1, 2 or 3, or several such as 1,2,3, got %q", cmd.approach)
		}
	}
	switch {
	case cmd.plot != "" && one && two:
		return false, false, false, usagef("--plot draws one figure, approach 1's envelope or approach 2's parabolas: pass --approach 1 or 2 with it")
	case cmd.plot != "" && !one && !two:
		return false, false, false, usagef("--plot draws approach 1's envelope or approach 2's IsoFLOP parabolas: pass --approach 1 or 2 (or 2,3)")
	case two && cmd.given != "":
		return false, false, false, usagef("--approach 2 fits runs: give --data or --study, not --given")
	case one && cmd.given != "":
		return false, false, false, usagef("--approach 1 takes the envelope of training curves: give --curves or --data, not --given")
	case cmd.curves != "" && !one:
		return false, false, false, usagef("--curves is approach 1's input: add 1 to --approach")
	}
	return one, two, three, nil
}

// Run runs the command.
func (cmd *frontierCommand) Run(ctx context.Context) error {
	ctx, err := cmd.parseWith(ctx, &cmd.invocation, cmd.flags())
	if err != nil {
		return err
	}
	cs, err := parseFloats(cmd.budget)
	if err != nil || len(cs) == 0 {
		return usagef("--budget: want one or more budgets in FLOP")
	}
	one, two, three, err := cmd.approaches()
	if err != nil {
		return err
	}
	var rep1 *envelopeJSON
	if one {
		if rep1, err = cmd.envelope(ctx, cs); err != nil {
			return err
		}
	}
	var rep2 *isoJSON
	if two {
		if rep2, err = cmd.isoFLOP(ctx, cs); err != nil {
			return err
		}
	}
	var rep *frontierJSON
	if three {
		law, o, err := cmd.options()
		if err != nil {
			return err
		}
		fit, params, err := cmd.params(ctx, law, o)
		if err != nil {
			return err
		}
		if rep, err = cmd.report(law, fit, params, cs); err != nil {
			return err
		}
	}
	if cmd.format == "json" {
		if !one && !two {
			return writeJSON(cmd.env.Stdout, rep)
		}
		return writeJSON(cmd.env.Stdout, approachesJSON{Approach1: rep1, Approach2: rep2, Approach3: rep})
	}
	w := cmd.env.Stdout
	if one {
		cmd.printEnvelope(w, rep1)
	}
	if two {
		if one {
			fmt.Fprintln(w)
		}
		cmd.printIso(w, rep2)
	}
	if three {
		if one || two {
			fmt.Fprintln(w, "\n== approach 3: the parametric law ==")
		}
		cmd.printTable(w, rep)
	}
	if btoi(one)+btoi(two)+btoi(three) > 1 {
		cmd.printComparison(w, rep1, rep2, rep)
	}
	return nil
}

// options are the law, which must have a frontier, and its fit options.
func (cmd *frontierCommand) options() (scaling.Law, scaling.Options, error) {
	law, o, err := cmd.fit.options()
	if err != nil {
		return nil, o, err
	}
	if law != scaling.Chinchilla && law != scaling.DataConstrained {
		return nil, o, usagef("--law: the frontier needs chinchilla or datablations, not %s", law.Name())
	}
	if cmd.unique > 0 && law != scaling.DataConstrained {
		return nil, o, usagef("--unique needs --law datablations")
	}
	return law, o, nil
}

// params are the law's parameters: --given's, or those of a fit to the
// data (then fit is that fit, with its bootstrap when asked for).
func (cmd *frontierCommand) params(ctx context.Context, law scaling.Law, o scaling.Options) (fit *scaling.Fit, params []float64, err error) {
	if cmd.given == "" {
		obs, _, err := cmd.data.read(ctx, law, cmd.data.data)
		if err != nil {
			return nil, nil, err
		}
		if fit, err = cmd.fit.fitAndBootstrap(ctx, law, o, obs, cmd.fit.seed); err != nil {
			return nil, nil, err
		}
		return fit, fit.Params, nil
	}
	g, err := parseAssignments(cmd.given)
	if err != nil {
		return nil, nil, usagef("--given: %v", err)
	}
	for _, name := range law.Params() {
		v, ok := g[name]
		if !ok {
			return nil, nil, usagef("--given: missing %s (law %s needs %v)", name, law.Name(), law.Params())
		}
		params = append(params, v)
	}
	return nil, params, nil
}

// report is the compute-optimal allocation at each budget (with
// intervals when fit was bootstrapped) and, with --unique, the
// data-constrained one.
func (cmd *frontierCommand) report(law scaling.Law, fit *scaling.Fit, params, budgets []float64) (*frontierJSON, error) {
	rep := &frontierJSON{Law: law.Name()}
	fr := scaling.FrontierOf(params)
	a, b := fr.Exponents()
	rep.G, rep.A, rep.B = jnum(fr.G()), jnum(a), jnum(b)
	for _, c := range budgets {
		row, err := optimalAt(fr, fit, c, rep)
		if err != nil {
			return nil, err
		}
		rep.Optimal = append(rep.Optimal, row)
		if cmd.unique > 0 {
			al, err := scaling.DataConstrainedOptimum(params, c, cmd.unique)
			if err != nil {
				return nil, err
			}
			ep := jnum(al.Epochs)
			rep.Constrained = append(rep.Constrained, allocJSON{C: jnum(c), N: jnum(al.N), D: jnum(al.D),
				TokensPerParam: jnum(al.TokensPerParam), Loss: jnum(al.Loss), Epochs: &ep})
		}
	}
	return rep, nil
}

// optimalAt is the compute-optimal allocation at budget c: fit's, with
// its intervals (and the exponent's, set on rep) when it was
// bootstrapped, or the frontier fr's of given parameters.
func optimalAt(fr scaling.Frontier, fit *scaling.Fit, c float64, rep *frontierJSON) (allocJSON, error) {
	if fit == nil {
		al := fr.At(c)
		return allocJSON{C: jnum(c), N: jnum(al.N), D: jnum(al.D), TokensPerParam: jnum(al.TokensPerParam), Loss: jnum(al.Loss)}, nil
	}
	ai, err := scaling.FrontierAt(fit, c)
	if err != nil {
		return allocJSON{}, err
	}
	row := allocJSON{C: jnum(c), N: jnum(ai.Allocation.N), D: jnum(ai.Allocation.D),
		TokensPerParam: jnum(ai.Allocation.TokensPerParam), Loss: jnum(ai.Allocation.Loss)}
	if fit.Bootstrap != nil {
		row.NCI, row.DCI, row.RCI, row.LCI = jivl(ai.N), jivl(ai.D), jivl(ai.TokensPerParam), jivl(ai.Loss)
		rep.ACI = jivl(ai.A)
	}
	return row, nil
}

// printTable prints the frontier's exponents and the allocations.
func (cmd *frontierCommand) printTable(w io.Writer, rep *frontierJSON) {
	fmt.Fprintf(w, "law %s: G %s, N_opt ∝ C^%s, D_opt ∝ C^%s", rep.Law, num(float64(rep.G)), num(float64(rep.A)), num(float64(rep.B)))
	if rep.ACI != nil {
		fmt.Fprintf(w, " (a %d%% CI %s–%s)", int(cmd.fit.level*100+0.5), num(float64(rep.ACI[0])), num(float64(rep.ACI[1])))
	}
	fmt.Fprintln(w)
	printAllocs(w, "compute-optimal", rep.Optimal)
	if len(rep.Constrained) > 0 {
		printAllocs(w, fmt.Sprintf("data-constrained, %s unique tokens", num(cmd.unique)), rep.Constrained)
	}
}

func printAllocs(w interface{ Write([]byte) (int, error) }, title string, rows []allocJSON) {
	fmt.Fprintf(w, "\n%s:\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUDGET\tPARAMS\tTOKENS\tTOKENS/PARAM\tEPOCHS\tLOSS")
	ci := func(v jnum, iv []jnum) string {
		s := num(float64(v))
		if iv != nil {
			s += fmt.Sprintf(" (%s–%s)", num(float64(iv[0])), num(float64(iv[1])))
		}
		return s
	}
	for _, r := range rows {
		ep := "-"
		if r.Epochs != nil {
			ep = num(float64(*r.Epochs))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", num(float64(r.C)), ci(r.N, r.NCI), ci(r.D, r.DCI), ci(r.TokensPerParam, r.RCI), ep, ci(r.Loss, r.LCI))
	}
	tw.Flush()
}

type frontierJSON struct {
	Law         string      `json:"law"`
	G           jnum        `json:"G"`
	A           jnum        `json:"a"`
	ACI         []jnum      `json:"a_ci,omitempty"`
	B           jnum        `json:"b"`
	Optimal     []allocJSON `json:"optimal"`
	Constrained []allocJSON `json:"data_constrained,omitempty"`
}

type allocJSON struct {
	C              jnum   `json:"compute"`
	N              jnum   `json:"params"`
	NCI            []jnum `json:"params_ci,omitempty"`
	D              jnum   `json:"tokens"`
	DCI            []jnum `json:"tokens_ci,omitempty"`
	TokensPerParam jnum   `json:"tokens_per_param"`
	RCI            []jnum `json:"tokens_per_param_ci,omitempty"`
	Epochs         *jnum  `json:"epochs,omitempty"`
	Loss           jnum   `json:"loss"`
	LCI            []jnum `json:"loss_ci,omitempty"`
}
