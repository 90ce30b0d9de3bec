package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// analyze runs a finished study's analysis plan and prints what it found:
// the fitted law of each group with its bootstrap intervals.
func analyze(ctx context.Context, env Env, spec *sweep.Spec, res *api.ResultsReply) error {
	if spec.Analysis == nil || spec.Analysis.Fit == nil {
		return nil
	}
	plan := spec.Analysis.Fit
	groups, err := fitPoints(plan, res)
	if err != nil {
		return err
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
			title += fmt.Sprintf(", best run over %v at each point", plan.BestOver)
		}
		fmt.Fprintf(env.Stdout, "\n%s:\n", title)
		path := filepath.Join(dir, "points.csv")
		if err := os.WriteFile(path, groups[g], 0o600); err != nil {
			return err
		}
		args := []string{"--law", plan.Law, "--data", path, "--x", plan.X, "--y", "loss", "--seed", strconv.FormatInt(plan.Seed+1, 10)}
		if plan.Bootstrap > 0 {
			args = append(args, "--bootstrap", strconv.Itoa(plan.Bootstrap))
		}
		if err := runFit(ctx, env, args); err != nil {
			fmt.Fprintf(env.Stdout, "no fit: %v\n", err)
		}
	}
	return nil
}

// fitPoints reduces a study's succeeded trials to the points of its fit:
// at each (group, x, seed), the best trial over the tuned parameters. It
// returns one CSV (columns: the law's variables and loss) per group.
func fitPoints(plan *sweep.FitPlan, res *api.ResultsReply) (map[string][]byte, error) {
	maximize := res.Direction == string(sweep.Maximize)
	type key struct {
		group string
		x     float64
		seed  int64
	}
	best := map[key]api.Trial{}
	for _, t := range res.Trials {
		if t.State != sweep.Succeeded || t.Result == nil || t.Result.Objective == nil {
			continue
		}
		x, ok := lookup(t, plan.X)
		if !ok {
			return nil, fmt.Errorf("analysis.fit.x: trial %s has neither a parameter nor a metric %q", t.ID, plan.X)
		}
		k := key{x: x, seed: t.Seed}
		if plan.Group != "" {
			k.group = formatValue(t.Params[plan.Group])
		}
		b, seen := best[k]
		obj := *t.Result.Objective
		if !seen || (maximize && obj > *b.Result.Objective) || (!maximize && obj < *b.Result.Objective) {
			best[k] = t
		}
	}
	if len(best) == 0 {
		return nil, fmt.Errorf("no succeeded trials to fit")
	}
	cols := []string{plan.X, "tokens", "unique_tokens", "members"}
	bufs := map[string]*bytes.Buffer{}
	writers := map[string]*csv.Writer{}
	keys := make([]key, 0, len(best))
	for k := range best {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].group != keys[j].group {
			return keys[i].group < keys[j].group
		}
		if keys[i].x != keys[j].x {
			return keys[i].x < keys[j].x
		}
		return keys[i].seed < keys[j].seed
	})
	for _, k := range keys {
		w, ok := writers[k.group]
		if !ok {
			bufs[k.group] = &bytes.Buffer{}
			w = csv.NewWriter(bufs[k.group])
			writers[k.group] = w
			_ = w.Write(append(dedupe(cols), "loss"))
		}
		t := best[k]
		var row []string
		for _, c := range dedupe(cols) {
			v, ok := lookup(t, c)
			if !ok {
				v = math.NaN()
			}
			if c == plan.X {
				v = k.x
			}
			row = append(row, strconv.FormatFloat(v, 'g', -1, 64))
		}
		row = append(row, strconv.FormatFloat(*t.Result.Objective, 'g', -1, 64))
		_ = w.Write(row)
	}
	out := map[string][]byte{}
	for g, w := range writers {
		w.Flush()
		out[g] = bufs[g].Bytes()
	}
	return out, nil
}

func dedupe(cols []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range cols {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// lookup reads a numeric value of a trial by name: a metric the method
// reported wins over a parameter of the same name, since it is measured.
func lookup(t api.Trial, name string) (float64, bool) {
	if t.Result != nil {
		if v, ok := t.Result.Metrics[name]; ok {
			return v, true
		}
	}
	if v, ok := t.Params[name].(float64); ok {
		return v, true
	}
	return 0, false
}
