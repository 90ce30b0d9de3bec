package command

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"asymptote.dev/asymptote/internal/scalingplot"
	"asymptote.dev/asymptote/scaling"
)

// isoFLOP runs Hoffmann et al.'s Approach 2 on the runs and reports the
// allocation at each budget in cs.
func (cmd *frontierCommand) isoFLOP(ctx context.Context, cs []float64) (*isoJSON, error) {
	obs, _, err := cmd.data.read(ctx, scaling.Chinchilla, cmd.data.data)
	if err != nil {
		return nil, err
	}
	o := scaling.IsoFLOPOptions{Tolerance: cmd.tolerance, Resamples: cmd.fit.bootstrap, Level: cmd.fit.level, Seed: cmd.fit.seed}
	switch cmd.fit.seedNoise {
	case "":
	case "measure":
		if o.Noise, err = scaling.SeedNoise(scaling.Chinchilla, obs, cmd.fit.level); err != nil {
			return nil, usagef("--seed-noise measure: %v", err)
		}
	default:
		c := curve{obs: obs, law: scaling.Chinchilla}
		if err := c.withNoise(cmd.fit.seedNoise); err != nil {
			return nil, err
		}
		o.Noise = c.opts.Noise
	}
	r, err := scaling.IsoFLOPFit(ctx, obs, o)
	if err != nil {
		return nil, err
	}
	if cmd.plot != "" {
		if err := scalingplot.IsoFLOP(cmd.plot, r, scalingplot.Options{}); err != nil {
			return nil, fmt.Errorf("plot: %w", err)
		}
	}
	rep := &isoJSON{Tolerance: jnum(o.Tolerance), Used: r.Used, Expanded: r.Expanded, level: cmd.fit.level,
		powerLawsJSON: powerLawsJSON{A: jnum(r.A), B: jnum(r.B), KN: jnum(r.KN), Replicates: r.Replicates, Failed: r.Failed}}
	if o.Noise != nil {
		rep.SeedNoise = newNoiseJSON(o.Noise)
	}
	if r.Replicates > 0 {
		rep.ACI, rep.BCI = jivl(r.ACI), jivl(r.BCI)
	}
	for _, b := range r.Budgets {
		bj := budgetJSON{C: jnum(b.C), Runs: b.Runs, Sizes: b.Sizes, Refused: b.Refused}
		if b.Refused == "" {
			bj.N, bj.D, bj.L, bj.LogNSE = jnum(b.NOpt), jnum(b.DOpt), jnum(b.LOpt), jnum(b.LogNSE)
			if r.Replicates > 0 {
				bj.NCI = jivl(b.NOptCI)
			}
			bj.Parabola = []jnum{jnum(b.Coef[0]), jnum(b.Coef[1]), jnum(b.Coef[2]), jnum(b.Center)}
		}
		rep.Budgets = append(rep.Budgets, bj)
	}
	rep.Optimal = powerLawAllocs(cs, r.At, r.Replicates > 0)
	return rep, nil
}

// powerLawAllocs are the allocations at the budgets cs of approach 1's or
// 2's power laws, at, with their intervals when boot; neither approach
// has a loss law, so the loss is not predicted.
func powerLawAllocs(cs []float64, at func(c float64) (n, d float64, nCI, dCI scaling.Interval), boot bool) []allocJSON {
	var out []allocJSON
	for _, c := range cs {
		n, d, nci, dci := at(c)
		row := allocJSON{C: jnum(c), N: jnum(n), D: jnum(d), TokensPerParam: jnum(d / n), Loss: jnum(math.NaN())}
		if boot {
			row.NCI, row.DCI = jivl(nci), jivl(dci)
		}
		out = append(out, row)
	}
	return out
}

// printIso prints Approach 2: the budgets with their minima, the power
// laws and the allocations.
func (cmd *frontierCommand) printIso(w io.Writer, rep *isoJSON) {
	fmt.Fprintf(w, "== approach 2: IsoFLOP parabolas (budgets within %s of compute) ==\n", num(float64(rep.Tolerance)))
	if rep.SeedNoise != nil {
		fmt.Fprintf(w, "seed noise of the replicates: SD of log loss %s, %s\n", num(float64(rep.SeedNoise.Pooled)), rep.SeedNoise.Source)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUDGET\tRUNS\tSIZES\tN_OPT\tSE(log N)\tLOSS\tSTATUS")
	for _, b := range rep.Budgets {
		if b.Refused != "" {
			fmt.Fprintf(tw, "%s\t%d\t%d\t-\t-\t-\trefused: %s\n", num(float64(b.C)), b.Runs, b.Sizes, b.Refused)
			continue
		}
		n := num(float64(b.N))
		if b.NCI != nil {
			n += " " + ivl(b.NCI)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\tused\n", num(float64(b.C)), b.Runs, b.Sizes, n, num(float64(b.LogNSE)), num(float64(b.L)))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nN_opt ∝ C^%s, D_opt ∝ C^%s over %d budgets", num(float64(rep.A)), num(float64(rep.B)), rep.Used)
	if rep.ACI != nil {
		fmt.Fprintf(w, " (a %d%% CI %s–%s, b %s–%s; %d replicates, %d failed", int(rep.level*100+0.5),
			num(float64(rep.ACI[0])), num(float64(rep.ACI[1])), num(float64(rep.BCI[0])), num(float64(rep.BCI[1])), rep.Replicates, rep.Failed)
		if rep.Expanded {
			fmt.Fprint(w, "; percentiles expanded for the residuals' degrees of freedom")
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintln(w)
	printAllocs(w, "compute-optimal (approach 2)", rep.Optimal)
}

// printComparison sets the approaches' exponents side by side; an
// approach not run is nil.
func (cmd *frontierCommand) printComparison(w io.Writer, one *envelopeJSON, two *isoJSON, three *frontierJSON) {
	fmt.Fprintln(w, "\nN_opt exponent a by approach:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "APPROACH\tA\t%d%% CI\n", int(cmd.fit.level*100+0.5))
	if one != nil {
		fmt.Fprintf(tw, "1 (envelope)\t%s\t%s\n", num(float64(one.A)), ivl(one.ACI))
	}
	if two != nil {
		fmt.Fprintf(tw, "2 (IsoFLOP)\t%s\t%s\n", num(float64(two.A)), ivl(two.ACI))
	}
	if three != nil {
		fmt.Fprintf(tw, "3 (parametric)\t%s\t%s\n", num(float64(three.A)), ivl(three.ACI))
	}
	tw.Flush()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

type approachesJSON struct {
	Approach1 *envelopeJSON `json:"approach1,omitempty"`
	Approach2 *isoJSON      `json:"approach2,omitempty"`
	Approach3 *frontierJSON `json:"approach3,omitempty"`
}

type isoJSON struct {
	Tolerance jnum         `json:"flop_tolerance"`
	SeedNoise *noiseJSON   `json:"seed_noise,omitempty"`
	Budgets   []budgetJSON `json:"budgets"`
	Used      int          `json:"used"`
	powerLawsJSON
	// Expanded: the percentiles were widened for the residuals' degrees
	// of freedom (no seed-noise model).
	Expanded bool        `json:"expanded,omitempty"`
	Optimal  []allocJSON `json:"optimal"`
	level    float64
}

// powerLawsJSON are the power laws N_opt = k·C^a and D_opt ∝ C^b of
// approaches 1 and 2, with their bootstrap.
type powerLawsJSON struct {
	A          jnum   `json:"a"`
	ACI        []jnum `json:"a_ci,omitempty"`
	B          jnum   `json:"b"`
	BCI        []jnum `json:"b_ci,omitempty"`
	KN         jnum   `json:"k_params"`
	Replicates int    `json:"replicates"`
	Failed     int    `json:"failed"`
}

type budgetJSON struct {
	C     jnum `json:"compute"`
	Runs  int  `json:"runs"`
	Sizes int  `json:"sizes"`
	// Parabola is c0, c1, c2 and the centre m of L = c0 + c1·u + c2·u², u = log N − m.
	Parabola []jnum `json:"parabola,omitempty"`
	N        jnum   `json:"params_opt,omitempty"`
	NCI      []jnum `json:"params_opt_ci,omitempty"`
	LogNSE   jnum   `json:"log_params_se,omitempty"`
	D        jnum   `json:"tokens_opt,omitempty"`
	L        jnum   `json:"loss_opt,omitempty"`
	Refused  string `json:"refused,omitempty"`
}
