package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"asymptote.dev/asymptote/internal/scalingplot"
	"asymptote.dev/asymptote/scaling"
)

// datablationsBase are Muennighoff et al.'s C4 constants (their log-space
// a, b, e and alpha = beta), for --base datablations.
var datablationsBase = map[string]float64{
	"E":     math.Exp(0.6254804),
	"A":     math.Exp(6.255414),
	"B":     math.Exp(7.3049974),
	"alpha": 0.3526596,
	"beta":  0.3526596,
}

// epochsCommand is `asymptote epochs`.
type epochsCommand struct {
	invocation
	scalingFlags
	z, noiseFloor float64
	base, plot    string
}

// flags declares epochs' flags.
func (cmd *epochsCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "epochs", "--data FILE.csv [flags]")
	cmd.scalingFlags.register(fs, "params", "datablations")
	fs.Float64Var(&cmd.z, "z", 2, "degradation threshold in seed standard deviations")
	fs.Float64Var(&cmd.noiseFloor, "noise-floor", 0, "seed-noise `LEVEL` when the data hold no replicate seeds (default 0.004); with replicates, a lower bound")
	fs.StringVar(&cmd.base, "base", "", "hold the base law at published constants: `datablations` (Muennighoff et al.'s C4 fit)")
	fs.StringVar(&cmd.plot, "plot", "", "write loss against epochs for the longest series to `FILE`.png or FILE.svg")
	return fs
}

// Run runs the command.
func (cmd *epochsCommand) Run(ctx context.Context) error {
	ctx, err := cmd.parseWith(ctx, &cmd.invocation, cmd.flags())
	if err != nil {
		return err
	}
	law, o, err := cmd.options()
	if err != nil {
		return err
	}
	obs, _, err := cmd.data.read(ctx, law, cmd.data.data)
	if err != nil {
		return err
	}
	rep, err := scaling.EpochAnalysis(obs, scaling.EpochOptions{Z: cmd.z, NoiseFloor: cmd.noiseFloor})
	if err != nil {
		return err
	}
	fit, err := cmd.fit.fitAndBootstrap(ctx, law, o, obs, cmd.fit.seed)
	if err != nil {
		return err
	}
	if cmd.plot != "" {
		if err := scalingplot.Epochs(cmd.plot, rep, fit, scalingplot.Options{}); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	out := epochsReport(rep, fit)
	if cmd.format == "json" {
		return writeJSON(cmd.env.Stdout, out)
	}
	out.printTable(cmd.env.Stdout)
	return nil
}

// options are the data-constrained law and its fit options, with the
// base law held at Muennighoff et al.'s constants under --base
// datablations (a constant --fix gives wins).
func (cmd *epochsCommand) options() (scaling.Law, scaling.Options, error) {
	cmd.fit.law = "datablations"
	law, o, err := cmd.fit.options()
	if err != nil {
		return nil, o, err
	}
	switch cmd.base {
	case "":
	case "datablations":
		for k, v := range datablationsBase {
			if _, set := o.Fixed[k]; !set {
				o.Fixed[k] = v
			}
		}
	default:
		return nil, o, usagef("--base: want datablations, got %q", cmd.base)
	}
	return law, o, nil
}

// epochsReport is the epoch analysis rep and the data-constrained fit,
// with the value of repeated data at the fitted R_D*, as the JSON output
// has them and the table prints them.
func epochsReport(rep *scaling.EpochReport, fit *scaling.Fit) *epochsJSON {
	out := &epochsJSON{Sigma: jnum(rep.Sigma), SigmaSource: rep.SigmaSource, Z: jnum(rep.Z), Fit: newFitReport(fit, 0)}
	out.Fit.Residuals = nil
	for _, s := range rep.Series {
		sj := seriesJSON{N: jnum(s.N), U: jnum(s.U), Best: jnum(s.Best), Points: len(s.Points)}
		if s.Degrades > 0 {
			d := jnum(s.Degrades)
			sj.Degrades = &d
		}
		out.Series = append(out.Series, sj)
	}
	rd, _ := fit.Param("RD_star")
	out.rd = rd
	var rdCI *scaling.Interval
	if fit.Bootstrap != nil {
		iv, _ := fit.Bootstrap.Interval(fit, "RD_star")
		rdCI = &iv
	}
	for _, e := range []float64{2, 4, 8, 16, 40} {
		fr, mv := scaling.RepeatValue(rd, e)
		v := valueJSON{Epochs: jnum(e), Fraction: jnum(fr), Marginal: jnum(mv)}
		if rdCI != nil {
			// Both quantities increase with R_D*, so its interval maps
			// through them.
			lf, lm := scaling.RepeatValue(rdCI.Lo, e)
			hf, hm := scaling.RepeatValue(rdCI.Hi, e)
			v.FractionCI, v.MarginalCI = []jnum{jnum(lf), jnum(hf)}, []jnum{jnum(lm), jnum(hm)}
		}
		out.Value = append(out.Value, v)
	}
	return out
}

// printTable prints the series, the fit and the value of repeated data.
func (out *epochsJSON) printTable(w io.Writer) {
	fmt.Fprintf(w, "seed noise σ %s (%s); degradation = loss above the running minimum by more than %s·σ\n\n",
		num(float64(out.Sigma)), out.SigmaSource, num(float64(out.Z)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARAMS\tUNIQUE TOKENS\tEPOCH COUNTS\tBEST AT\tDEGRADES AT")
	for _, s := range out.Series {
		deg := "-"
		if s.Degrades != nil {
			deg = num(float64(*s.Degrades))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", num(float64(s.N)), num(float64(s.U)), s.Points, num(float64(s.Best)), deg)
	}
	tw.Flush()
	fmt.Fprintln(w, "\ndata-constrained fit (Muennighoff et al. 2023):")
	out.Fit.printTable(w, false)
	fmt.Fprintf(w, "\nvalue of repeated data at R_D* = %s:\n", num(out.rd))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EPOCHS\tD'/D\tMARGINAL VALUE OF A REPEATED TOKEN")
	for _, v := range out.Value {
		f, m := num(float64(v.Fraction)), num(float64(v.Marginal))
		if v.FractionCI != nil {
			f += fmt.Sprintf(" (%s–%s)", num(float64(v.FractionCI[0])), num(float64(v.FractionCI[1])))
			m += fmt.Sprintf(" (%s–%s)", num(float64(v.MarginalCI[0])), num(float64(v.MarginalCI[1])))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", num(float64(v.Epochs)), f, m)
	}
	tw.Flush()
}

type epochsJSON struct {
	Sigma       jnum         `json:"sigma_seed"`
	SigmaSource string       `json:"sigma_source"`
	Z           jnum         `json:"z"`
	Series      []seriesJSON `json:"series"`
	Fit         *fitReport   `json:"fit"`
	Value       []valueJSON  `json:"repeat_value"`
	// rd is the fitted R_D* the value of repeated data is given at.
	rd float64
}

type seriesJSON struct {
	N        jnum  `json:"params"`
	U        jnum  `json:"unique_tokens"`
	Points   int   `json:"epoch_counts"`
	Best     jnum  `json:"best_epochs"`
	Degrades *jnum `json:"degrades_at,omitempty"`
}

type valueJSON struct {
	Epochs     jnum   `json:"epochs"`
	Fraction   jnum   `json:"effective_fraction"`
	FractionCI []jnum `json:"effective_fraction_ci,omitempty"`
	Marginal   jnum   `json:"marginal_value"`
	MarginalCI []jnum `json:"marginal_value_ci,omitempty"`
}
