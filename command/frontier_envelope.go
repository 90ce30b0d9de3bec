package command

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"

	"asymptote.dev/asymptote/internal/scalingplot"
	"asymptote.dev/asymptote/scaling"
)

// historyHead is the header `asymptote results STUDY -history` and
// `-checkpoints` write in csv: one row a metric value.
var historyHead = []string{"trial", "attempt", "step", "time", "metric", "value"}

// envelope runs Hoffmann et al.'s Approach 1 on the training curves of
// --curves (or --data) and reports the allocation at each budget in cs.
func (cmd *frontierCommand) envelope(ctx context.Context, cs []float64) (*envelopeJSON, error) {
	file := cmd.curves
	if file == "" {
		file = cmd.data.data
	}
	study, err := cmd.data.oneStudy()
	if err != nil {
		return nil, err
	}
	var obs []scaling.Obs
	var source string
	switch {
	case file != "":
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if obs, err = cmd.curveObs(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	case study != "":
		if obs, source, err = cmd.studyCurves(ctx, study); err != nil {
			return nil, err
		}
	default:
		return nil, usagef("--approach 1 reads training curves: --study NAME (its checkpoint records, else its metric history), or --curves FILE.csv (or --data), with params, tokens (or compute) and loss at each step and --group naming the run, or a history from `asymptote results STUDY -checkpoints --format csv` (or -history)")
	}
	curves, err := scaling.CurvesOf(obs)
	if err != nil {
		return nil, err
	}
	r, err := scaling.EnvelopeFit(ctx, curves, scaling.EnvelopeOptions{Budgets: cmd.envelopeBudgets,
		Resamples: cmd.fit.bootstrap, Level: cmd.fit.level, Seed: cmd.fit.seed})
	if err != nil {
		return nil, err
	}
	if cmd.plot != "" {
		if err := scalingplot.Envelope(cmd.plot, r, scalingplot.Options{}); err != nil {
			return nil, fmt.Errorf("plot: %w", err)
		}
	}
	rep := &envelopeJSON{Source: source, Curves: len(curves), Sizes: r.Sizes, Used: r.Used, Winners: r.Winners, level: cmd.fit.level,
		powerLawsJSON: powerLawsJSON{A: jnum(r.A), B: jnum(r.B), KN: jnum(r.KN), Replicates: r.Replicates, Failed: r.Failed}}
	if r.OneRunPerSize {
		rep.Caveat = scaling.EnvelopeCaveat
	}
	if r.Replicates > 0 {
		rep.ACI, rep.BCI = jivl(r.ACI), jivl(r.BCI)
	}
	for _, p := range r.Points {
		rep.Budgets = append(rep.Budgets, envelopePointJSON{C: jnum(p.C), Curves: p.Curves, Run: curves[p.Curve].Label,
			N: jnum(p.N), D: jnum(p.D), L: jnum(p.Loss), Edge: p.Edge})
	}
	rep.Optimal = powerLawAllocs(cs, r.At, r.Replicates > 0)
	return rep, nil
}

// studyCurves reads the training curves of a live study: the records its
// trials saved with their checkpoints (tokens and FLOPs so far among
// them), or, where it saved none, every report of its metric history, the
// same records `asymptote results STUDY -checkpoints` (-history) prints.
// source says which.
func (cmd *frontierCommand) studyCurves(ctx context.Context, study string) ([]scaling.Obs, string, error) {
	for _, checkpoints := range []bool{true, false} {
		raw, err := loadHistory(ctx, study, checkpoints)
		if err != nil {
			return nil, "", fmt.Errorf("study %s: %w", study, err)
		}
		cr := csv.NewReader(bytes.NewReader(raw))
		if _, err := cr.Read(); err != nil {
			return nil, "", fmt.Errorf("study %s: its history: %w", study, err)
		}
		if _, err := cr.Read(); errors.Is(err, io.EOF) {
			continue // no records of this kind
		}
		obs, err := cmd.curveObs(raw)
		if err != nil {
			return nil, "", fmt.Errorf("study %s: %w", study, err)
		}
		kind := "checkpoint records"
		if !checkpoints {
			kind = "metric history (no checkpoint records)"
		}
		return obs, fmt.Sprintf("study %s, its %s", study, kind), nil
	}
	return nil, "", fmt.Errorf("study %s has no metric history yet: approach 1 needs its trials' per-step or per-checkpoint reports", study)
}

// curveObs reads the points of training curves: a history CSV pivoted to
// one point a report, or any other CSV read by the column flags (params,
// tokens or compute, the loss, and --group for the run).
func (cmd *frontierCommand) curveObs(raw []byte) ([]scaling.Obs, error) {
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == nil && slices.Equal(header, historyHead) {
		return cmd.historyObs(cr)
	}
	return cmd.data.readObs(raw, []string{"N", "D"})
}

// historyObs pivots a history CSV into one point a (trial, step): the loss
// is the metric --y names, the tokens the metric --tokens names, and the
// size the metric --params names or, where a trial does not report it,
// flops/(6·tokens) from its "flops" metric. A step reported by several
// attempts keeps the latest attempt's values.
func (cmd *frontierCommand) historyObs(cr *csv.Reader) ([]scaling.Obs, error) {
	type key struct {
		trial string
		step  int64
	}
	type report struct {
		attempt int
		values  map[string]float64
	}
	reports := map[key]*report{}
	var order []key
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		attempt, err1 := strconv.Atoi(rec[1])
		step, err2 := strconv.ParseInt(rec[2], 10, 64)
		v, err3 := strconv.ParseFloat(rec[5], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		k := key{rec[0], step}
		r, ok := reports[k]
		switch {
		case !ok:
			r = &report{attempt: attempt, values: map[string]float64{}}
			reports[k] = r
			order = append(order, k)
		case attempt > r.attempt:
			r.attempt, r.values = attempt, map[string]float64{}
		case attempt < r.attempt:
			continue
		}
		r.values[rec[4]] = v
	}
	loss, tokens, params := cmd.data.loss, cmd.data.tokens, cmd.data.params
	var obs []scaling.Obs
	// sizes are each trial's sizes, as reported or derived per report: a
	// trial is one size, so they must agree.
	sizes := map[string][]float64{}
	for _, k := range order {
		vals := reports[k].values
		l, okL := vals[loss]
		d, okD := vals[tokens]
		if !okL || !okD {
			// A report without the loss or the tokens (a throughput, say)
			// is not a point of the curve.
			continue
		}
		n, okN := vals[params]
		if !okN {
			f, okF := vals["flops"]
			if !okF {
				return nil, fmt.Errorf("trial %s step %d: no %q metric and no flops to derive it from (N = flops/(6·tokens)); have the method report its parameter count as %q, or name it with --params", k.trial, k.step, params, params)
			}
			n = f / (6 * d)
		}
		sizes[k.trial] = append(sizes[k.trial], n)
		obs = append(obs, scaling.Obs{N: n, D: d, Loss: l, Group: k.trial})
	}
	// One size a trial: the median of its reports', which must agree to
	// 1% (flops that are not 6ND, such as ones counting attention, do not).
	size := map[string]float64{}
	for t, ns := range sizes {
		v := slices.Clone(ns)
		slices.Sort(v)
		m := v[len(v)/2]
		if v[0] < 0.99*m || v[len(v)-1] > 1.01*m {
			return nil, fmt.Errorf("trial %s: its size (the %q metric, or flops/(6·tokens)) ranges from %.4g to %.4g over its reports; approach 1 needs C = 6ND: report %q", t, params, v[0], v[len(v)-1], params)
		}
		size[t] = m
	}
	for i := range obs {
		obs[i].N = size[obs[i].Group]
	}
	if len(obs) == 0 {
		return nil, fmt.Errorf("no report has both a %q and a %q metric: name the loss with --y and the tokens with --tokens", loss, tokens)
	}
	return obs, nil
}

// printEnvelope prints Approach 1: the stretches of compute each size
// holds the envelope over, the power laws and the allocations.
func (cmd *frontierCommand) printEnvelope(w io.Writer, rep *envelopeJSON) {
	fmt.Fprintf(w, "== approach 1: lower envelope of %d training curves of %d sizes, %d budgets ==\n", rep.Curves, rep.Sizes, len(rep.Budgets))
	if rep.Source != "" {
		fmt.Fprintf(w, "curves from %s\n", rep.Source)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUDGETS\tPOINTS\tN_OPT\tRUN\tLOSS\tSTATUS")
	for i := 0; i < len(rep.Budgets); {
		j := i
		for j+1 < len(rep.Budgets) && rep.Budgets[j+1].Run == rep.Budgets[i].Run && rep.Budgets[j+1].Edge == rep.Budgets[i].Edge {
			j++
		}
		b, e := rep.Budgets[i], rep.Budgets[j]
		status := "used"
		if b.Edge != "" {
			status = "left out: " + b.Edge
		}
		fmt.Fprintf(tw, "%s–%s\t%d\t%s\t%s\t%s–%s\t%s\n", num(float64(b.C)), num(float64(e.C)), j-i+1, num(float64(b.N)), b.Run,
			num(float64(b.L)), num(float64(e.L)), status)
		i = j + 1
	}
	tw.Flush()
	fmt.Fprintf(w, "\nN_opt ∝ C^%s, D_opt ∝ C^%s over %d budgets, %d sizes among their minima", num(float64(rep.A)), num(float64(rep.B)), rep.Used, rep.Winners)
	if rep.ACI != nil {
		fmt.Fprintf(w, " (a %d%% CI %s–%s, b %s–%s; %d replicates over sizes, %d failed)", int(rep.level*100+0.5),
			num(float64(rep.ACI[0])), num(float64(rep.ACI[1])), num(float64(rep.BCI[0])), num(float64(rep.BCI[1])), rep.Replicates, rep.Failed)
	}
	fmt.Fprintln(w)
	if rep.Caveat != "" {
		fmt.Fprintf(w, "caveat: %s\n", rep.Caveat)
	}
	printAllocs(w, "compute-optimal (approach 1)", rep.Optimal)
}

type envelopeJSON struct {
	// Source, for --study, says which of the study's records the curves
	// are.
	Source  string              `json:"source,omitempty"`
	Curves  int                 `json:"curves"`
	Sizes   int                 `json:"sizes"`
	Budgets []envelopePointJSON `json:"budgets"`
	Used    int                 `json:"used"`
	Winners int                 `json:"winning_sizes"`
	powerLawsJSON
	Caveat  string      `json:"caveat,omitempty"`
	Optimal []allocJSON `json:"optimal"`
	level   float64
}

type envelopePointJSON struct {
	C      jnum   `json:"compute"`
	Curves int    `json:"curves"`
	Run    string `json:"run"`
	N      jnum   `json:"params_opt"`
	D      jnum   `json:"tokens_opt"`
	L      jnum   `json:"loss_opt"`
	Edge   string `json:"left_out,omitempty"`
}
