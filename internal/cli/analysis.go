package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// analyze runs a finished study's analysis plan and prints what it found:
// the fitted law of each group with its bootstrap intervals, and the points
// whose best run is not certified by its neighbours.
func analyze(ctx context.Context, env Env, spec *sweep.Spec, res *api.ResultsReply) error {
	if spec.Analysis == nil || spec.Analysis.Fit == nil {
		return nil
	}
	plan := spec.Analysis.Fit
	groups, err := analysis.Points(plan, res.Trials, res.Direction)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return fmt.Errorf("no succeeded trials to fit")
	}
	dir, err := os.MkdirTemp("", "asymptote-analysis-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		title := fmt.Sprintf("%s law over %s", plan.Law, plan.X)
		if plan.Group != "" {
			title += fmt.Sprintf(" for %s=%s", plan.Group, g)
		}
		if len(plan.BestOver) > 0 {
			title += fmt.Sprintf(", best run over %s at each point", strings.Join(plan.BestOver, ", "))
		}
		fmt.Fprintf(env.Stdout, "\n%s:\n", title)
		path := filepath.Join(dir, "points.csv")
		if err := os.WriteFile(path, pointsCSV(plan, groups[g]), 0o600); err != nil {
			return err
		}
		args := []string{"--law", plan.Law, "--data", path, "--x", plan.X, "--y", "loss", "--seed", strconv.FormatInt(plan.Seed+1, 10)}
		if plan.Bootstrap > 0 {
			args = append(args, "--bootstrap", strconv.Itoa(plan.Bootstrap))
		}
		if err := runFit(ctx, env, args); err != nil {
			fmt.Fprintf(env.Stdout, "no fit: %v\n", err)
		}
		printUncertified(env.Stdout, plan, analysis.Certify(spec, plan, res.Trials, groups[g]))
	}
	return nil
}

// pointsCSV writes points with the columns the fit command reads.
func pointsCSV(plan *sweep.FitPlan, points []analysis.Point) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	cols := []string{plan.X}
	for _, c := range []string{"params", "tokens", "unique_tokens"} {
		if c != plan.X {
			cols = append(cols, c)
		}
	}
	_ = w.Write(append(cols, "loss"))
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, p := range points {
		row := []string{f(p.X)}
		for _, c := range cols[1:] {
			switch c {
			case "params":
				row = append(row, f(p.Obs.N))
			case "tokens":
				row = append(row, f(p.Obs.D))
			case "unique_tokens":
				row = append(row, f(p.Obs.U))
			}
		}
		_ = w.Write(append(row, f(p.Obs.Loss)))
	}
	w.Flush()
	return buf.Bytes()
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
