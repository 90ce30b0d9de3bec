package cli

import (
	"context"
	"fmt"
	"strings"

	"asymptote.dev/asymptote/internal/scalingplot"
	"asymptote.dev/asymptote/scaling"
)

func init() {
	register(&Command{Name: "crossover", Summary: "find where two recipes' scaling curves cross, with bootstrap probabilities", Run: runCrossover})
}

func runCrossover(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "crossover", "--data A.csv --versus B.csv --range LO:HI [flags]")
	var df dataFlags
	var ff fitFlags
	df.register(fs, "params")
	ctx = withStudySource(ctx, fs) // -nats-url and -timeout for --study
	ff.register(fs, "power")
	versus := fs.String("versus", "", "CSV `FILE` of the second recipe (same columns as --data)")
	rng := fs.String("range", "", "search range `LO:HI` of the scale variable (compute for chinchilla laws)")
	noise := fs.Float64("noise", scaling.DefaultNoiseFloor, "seed-noise `LEVEL` of the loss for the within-noise flag")
	target := fs.Float64("target", 0, "report P(first curve lower) at this `SCALE`")
	names := fs.String("names", "", "labels of the two recipes `A,B`")
	format := fs.String("format", "table", "output `FORMAT`: table or json")
	plot := fs.String("plot", "", "write a plot to `FILE`.png or FILE.svg")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	lohi, err := parseFloats(strings.ReplaceAll(*rng, ":", ","))
	if err != nil || len(lohi) != 2 {
		return usagef("--range: want LO:HI, got %q", *rng)
	}
	if *versus == "" {
		return usagef("want --versus B.csv, the second recipe")
	}
	law, o, err := ff.options()
	if err != nil {
		return err
	}
	label := [2]string{"A", "B"}
	if *names != "" {
		n := strings.SplitN(*names, ",", 2)
		if len(n) != 2 {
			return usagef("--names: want A,B")
		}
		label = [2]string{n[0], n[1]}
	}
	var fits [2]*scaling.Fit
	for k, file := range []string{df.data, *versus} {
		var obs []scaling.Obs
		var err error
		if k == 1 {
			d := df
			d.study = ""
			obs, _, err = d.read(ctx, law, file)
		} else {
			obs, _, err = df.read(ctx, law, file)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", label[k], err)
		}
		f, err := ff.fitAndBootstrap(ctx, law, o, obs, ff.seed+uint64(k))
		if err != nil {
			return fmt.Errorf("%s: %w", label[k], err)
		}
		fits[k] = f
	}
	r, err := scaling.Crossovers(fits[0], fits[1], scaling.CrossoverOptions{Lo: lohi[0], Hi: lohi[1], Noise: *noise, Target: *target})
	if err != nil {
		return err
	}
	if *plot != "" {
		if err := scalingplot.Crossover(*plot, fits[0], fits[1], r, scalingplot.Options{XLabel: df.x, Names: label}); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	rep := crossoverJSON{Names: label[:], Range: []jnum{jnum(lohi[0]), jnum(lohi[1])},
		Fits:       []*fitReport{newFitReport(fits[0], 0), newFitReport(fits[1], 0)},
		Replicates: r.Replicates, MaxGap: jnum(r.MaxGap), WithinNoise: r.WithinNoise}
	for _, f := range rep.Fits {
		f.Residuals = nil
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
		if *target > 0 {
			p := jnum(r.PFirstBelow)
			rep.PFirstBelow = &p
		}
	}
	if *format == "json" {
		return writeJSON(env.Stdout, rep)
	}
	w := env.Stdout
	for k, f := range rep.Fits {
		fmt.Fprintf(w, "== %s ==\n", label[k])
		f.printTable(w, false)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "crossings of %s and %s in [%s, %s]: %d\n", label[0], label[1], num(lohi[0]), num(lohi[1]), len(r.Roots))
	for i, root := range rep.Roots {
		line := fmt.Sprintf("  root %d at %s", i+1, num(float64(root.X)))
		if root.CI != nil {
			line += fmt.Sprintf(", %d%% CI (%s, %s)", int(ff.level*100+0.5), num(float64(root.CI[0])), num(float64(root.CI[1])))
		}
		if root.Extrapolated {
			line += ", extrapolated (outside the observed range)"
		}
		fmt.Fprintln(w, line)
	}
	if len(r.Roots) > 0 {
		fmt.Fprintf(w, "largest gap between the curves across the crossing(s): %s", num(r.MaxGap))
		if r.WithinNoise {
			fmt.Fprintf(w, " (within seed noise %s: the crossing is not resolved)", num(*noise))
		}
		fmt.Fprintln(w)
	}
	if r.Replicates > 0 {
		fmt.Fprintf(w, "paired bootstrap (%d replicates): P(0 crossings) %.3f, P(1) %.3f, P(2) %.3f, P(3+) %.3f\n",
			r.Replicates, r.PCount[0], r.PCount[1], r.PCount[2], r.PCount[3])
		if *target > 0 {
			fmt.Fprintf(w, "P(%s below %s at %s) = %.3f\n", label[0], label[1], num(*target), r.PFirstBelow)
		}
	} else {
		fmt.Fprintln(w, "no intervals: pass --bootstrap N for crossing probabilities and root intervals")
	}
	return nil
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
}

type rootJSON struct {
	X            jnum   `json:"x"`
	CI           []jnum `json:"ci,omitempty"`
	Extrapolated bool   `json:"extrapolated"`
}
