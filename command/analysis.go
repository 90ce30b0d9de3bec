package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// analyze runs a finished study's analysis plan and prints what it found:
// the fitted law of each group with its bootstrap intervals, and the points
// whose best run is not certified by its neighbours. It fits as `asymptote
// fit --study` does with the study's spec, which is as the leader's refit
// does.
func analyze(ctx context.Context, env Env, spec *sweep.Spec, res *api.ResultsReply) error {
	if spec.Analysis == nil || spec.Analysis.Fit == nil {
		return nil
	}
	// The flags' defaults, none of them set: the plan decides.
	fs := flag.NewFlagSet("analysis", flag.ContinueOnError)
	var df dataFlags
	var ff fitFlags
	df.register(fs, "")
	ff.register(fs, spec.Analysis.Fit.Law)
	curves, err := planCurves(&studyData{Name: spec.Name, Results: res, Spec: spec}, &ff, &df, nil)
	if err != nil {
		return err
	}
	for _, c := range curves {
		fmt.Fprintln(env.Stdout)
		_, rep, err := fitCurve(ctx, c, nil, nil, 0)
		if err != nil {
			fmt.Fprintf(env.Stdout, "%s\nno fit: %v\n", c.plan.line(), err)
		} else {
			rep.printTable(env.Stdout, false)
		}
		printUncertified(env.Stdout, spec.Analysis.Fit, analysis.Certify(spec, spec.Analysis.Fit, res.Trials, c.points))
	}
	return nil
}

func printUncertified(w io.Writer, plan *sweep.FitPlan, u []api.Uncertified) {
	if len(plan.BestOver) == 0 {
		return
	}
	if len(u) == 0 {
		fmt.Fprintf(w, "every point's best run beats all its one-step neighbours in %s\n", strings.Join(plan.BestOver, ", "))
		return
	}
	fmt.Fprintf(w, "%d points' best runs are not certified (Kim et al. 2025 trust a best run only when it beats every one-step neighbour):\n", len(u))
	for _, x := range u {
		fmt.Fprintf(w, "  %s=%.4g seed %d (trial %s): %s\n", plan.X, x.X, x.Seed, x.Trial, x.Reason)
	}
}

// fitLine renders a live fit in one line: the asymptote (or the first
// parameter) with its interval.
func fitLine(sums []api.FitSummary) string {
	var parts []string
	for _, s := range sums {
		if s.Error != "" || len(s.Params) == 0 {
			continue
		}
		p := s.Params[0]
		for _, q := range s.Params {
			if q.Name == "E" {
				p = q
			}
		}
		txt := fmt.Sprintf("%s %.4g", p.Name, p.Value)
		if p.Lo != nil {
			txt += fmt.Sprintf(" (%.4g–%.4g)", *p.Lo, *p.Hi)
		}
		if s.Group != "" {
			txt = s.Group + ": " + txt
		}
		parts = append(parts, txt)
	}
	return strings.Join(parts, ", ")
}

// printAnalysis shows a study's live fits in status.
func printAnalysis(w io.Writer, sums []api.FitSummary) {
	for _, s := range sums {
		head := fmt.Sprintf("fit (%s law over %s", s.Law, s.X)
		if s.Group != "" {
			head += ", group " + s.Group
		}
		head += fmt.Sprintf(", %d points from %d trials, as of %s)", s.Points, s.Trials, s.Time.Format("15:04:05"))
		fmt.Fprintln(w, head+":")
		if s.Error != "" {
			fmt.Fprintf(w, "  not yet: %s\n", s.Error)
			continue
		}
		for _, p := range s.Params {
			ci := ""
			if p.Lo != nil {
				ci = fmt.Sprintf("  95%% CI (%.5g, %.5g)", *p.Lo, *p.Hi)
			}
			fmt.Fprintf(w, "  %-8s %.5g%s\n", p.Name, p.Value, ci)
		}
		r2 := "undefined (the objective does not vary)"
		if s.R2 != nil {
			r2 = fmt.Sprintf("%.4f", *s.R2)
		}
		fmt.Fprintf(w, "  R² %s; %d of %d starts agree\n", r2, s.Agree, s.Starts)
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  warning: %s\n", n)
		}
		if len(s.Uncert) > 0 {
			fmt.Fprintf(w, "  %d points' best runs are uncertified, e.g. %s=%.4g: %s\n", len(s.Uncert), s.X, s.Uncert[0].X, s.Uncert[0].Reason)
		}
	}
}
