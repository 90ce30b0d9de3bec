package command

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/export"
	"asymptote.dev/asymptote/scaling"
	"asymptote.dev/asymptote/sweep"
)

// studyColumns are the columns the column flags (--x, --params, --y,
// --group...) name in a study's trial records. They are the columns of
// `asymptote results --format csv`, so a flag reads a study as it reads
// that file: a metric by its name, a parameter by its name unless a metric
// shares it (then param.NAME), and each trial's objective, seed, index and
// attempts.
type studyColumns struct {
	header   []string
	isMetric map[string]bool
}

func newStudyColumns(trials []api.Trial) studyColumns {
	params, metrics := export.Columns(trials)
	header := append([]string{"trial", "index", "state", "seed", "attempts"}, params...)
	header = append(append(append(header, "objective"), metrics...), "error")
	isMetric := map[string]bool{}
	for _, m := range metrics {
		isMetric[m] = true
	}
	return studyColumns{header: header, isMetric: isMetric}
}

func (s studyColumns) has(col string) bool { return slices.Contains(s.header, col) }

// cell is trial t's value in column col: a number, a string, or nil for
// none.
func (s studyColumns) cell(t api.Trial, col string) any {
	switch col {
	case "trial":
		return t.ID
	case "state":
		return string(t.State)
	case "error":
		return t.Error
	case "index":
		return float64(t.Index)
	case "seed":
		return float64(t.Seed)
	case "attempts":
		return float64(t.Attempt)
	case "objective":
		if t.Result != nil && t.Result.Objective != nil {
			return *t.Result.Objective
		}
		return nil
	}
	if s.isMetric[col] {
		if t.Result == nil {
			return nil
		}
		if _, ok := t.Result.Metrics[col]; ok {
			v, _ := analysis.Lookup(t, col)
			return v
		}
		if word, ok := t.Result.NonFinite[col]; ok {
			v, _ := strconv.ParseFloat(word, 64)
			return v
		}
		return nil
	}
	if p, ok := strings.CutPrefix(col, "param."); ok && s.isMetric[p] {
		col = p
	}
	return t.Params[col]
}

// number is trial t's value in column col as an observation takes it: a
// finite positive number, or why it is not one.
func (s studyColumns) number(t api.Trial, col string) (float64, error) {
	c := s.cell(t, col)
	text := export.Format(c, -1)
	v, ok := c.(float64)
	if str, isText := c.(string); isText {
		// A text value that spells a number is one, as in the CSV.
		f, err := strconv.ParseFloat(strings.TrimSpace(str), 64)
		v, ok = f, err == nil
	}
	var msg string
	switch {
	case !ok:
		msg = fmt.Sprintf("%q is not a number", text)
	case math.IsNaN(v):
		msg = "is NaN"
	case math.IsInf(v, 0):
		msg = "is infinite"
	case v <= 0:
		msg = "must be positive, got " + text
	default:
		return v, nil
	}
	return v, fmt.Errorf("trial %s: %w", t.ID, &scaling.CSVError{Column: col, Msg: msg})
}

// obsField is one value of an observation and the column it is read from.
type obsField struct {
	col, name string
	set       func(*scaling.Obs, float64)
}

// obsFields are the columns of inputs (and the loss) under cols; tokens
// come from compute when the study has no tokens column.
func (s studyColumns) obsFields(inputs []string, cols scaling.Columns) (fields []obsField, fromCompute bool) {
	fromCompute = cols.C != "" && !s.has(cols.D) && s.has(cols.C)
	for _, in := range inputs {
		switch {
		case in == "X":
			fields = append(fields, obsField{cols.X, "x", func(o *scaling.Obs, v float64) { o.X = v }})
		case in == "N":
			fields = append(fields, obsField{cols.N, "params", func(o *scaling.Obs, v float64) { o.N = v }})
		case in == "D" && fromCompute:
			// Compute for now; divided by 6N once N is read.
			fields = append(fields, obsField{cols.C, "compute", func(o *scaling.Obs, v float64) { o.D = v }})
		case in == "D":
			fields = append(fields, obsField{cols.D, "tokens", func(o *scaling.Obs, v float64) { o.D = v }})
		case in == "U":
			fields = append(fields, obsField{cols.U, "unique tokens", func(o *scaling.Obs, v float64) { o.U = v }})
		}
	}
	fields = append(fields, obsField{cols.Loss, "loss", func(o *scaling.Obs, v float64) { o.Loss = v }})
	return fields, fromCompute
}

// missing reports the fields' columns (and the group's) the study lacks.
func (s studyColumns) missing(fields []obsField, group string) error {
	var errs []error
	for _, f := range fields {
		switch {
		case f.col == "":
			errs = append(errs, fmt.Errorf("no column given for %s", f.name))
		case !s.has(f.col):
			errs = append(errs, &scaling.CSVError{Column: f.col, Msg: fmt.Sprintf("missing (the study's results have %s)", strings.Join(s.header, ", "))})
		}
	}
	if group != "" && !s.has(group) {
		errs = append(errs, &scaling.CSVError{Column: group, Msg: "missing"})
	}
	return errors.Join(errs...)
}

// studyObs reads the observations of inputs from a study's succeeded
// trials, with the column flags read as for the study's results CSV: the
// objective is the loss unless the study has a loss column or --y names
// another. Errors name the trial and column.
func (d *dataFlags) studyObs(trials []api.Trial, inputs []string) ([]scaling.Obs, error) {
	ok, err := succeededTrials(trials)
	if err != nil {
		return nil, err
	}
	s := newStudyColumns(trials)
	cols := d.columns()
	if !flagsSet(d.fs)["y"] && !s.has(cols.Loss) {
		cols.Loss = "objective"
	}
	fields, fromCompute := s.obsFields(inputs, cols)
	if err := s.missing(fields, cols.Group); err != nil {
		return nil, err
	}
	var obs []scaling.Obs
	var errs []error
	for _, t := range ok {
		var o scaling.Obs
		for _, f := range fields {
			v, err := s.number(t, f.col)
			if err != nil {
				errs = append(errs, err)
			}
			f.set(&o, v)
		}
		if cols.Group != "" {
			o.Group = export.Format(s.cell(t, cols.Group), -1)
		}
		if fromCompute && o.N > 0 {
			o.D /= 6 * o.N
		}
		obs = append(obs, o)
		if len(errs) >= 20 {
			errs = append(errs, errors.New("(stopped after 20 errors)"))
			break
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return obs, nil
}

// succeededTrials returns the succeeded trials, in their order, or an
// error that counts the others by state when there are none.
func succeededTrials(trials []api.Trial) ([]api.Trial, error) {
	var ok []api.Trial
	counts := map[string]int{}
	for _, t := range trials {
		if t.State == sweep.Succeeded {
			ok = append(ok, t)
			continue
		}
		counts[string(t.State)]++
	}
	if len(ok) == 0 {
		return nil, noSucceeded(len(trials), counts)
	}
	return ok, nil
}

// noSucceeded says that none of rows trials succeeded, with the count of
// each state they are in.
func noSucceeded(rows int, counts map[string]int) error {
	what := "no trials"
	if rows > 0 {
		var by []string
		for _, st := range slices.Sorted(maps.Keys(counts)) {
			by = append(by, fmt.Sprintf("%d %s", counts[st], st))
		}
		what = fmt.Sprintf("%d trials (%s)", rows, strings.Join(by, ", "))
	}
	return fmt.Errorf("no succeeded trials yet: the results have %s", what)
}
