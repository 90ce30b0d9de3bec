// Package export writes a study's trials and metric history in the
// formats people load into pandas, Polars and DuckDB: CSV, JSON lines and
// Parquet. The CLI's results command and the HTTP API share it, so a file
// from either reads the same.
package export

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"asymptote.dev/asymptote/internal/api"
)

// Params returns every parameter name of the trials, sorted.
func Params(trials []api.Trial) []string {
	return unionKeys(trials, func(t api.Trial) []string { return slices.Collect(maps.Keys(t.Params)) })
}

// Metrics returns every result metric name of the trials, sorted.
func Metrics(trials []api.Trial) []string {
	return unionKeys(trials, func(t api.Trial) []string {
		if t.Result == nil {
			return nil
		}
		return append(slices.Collect(maps.Keys(t.Result.Metrics)), slices.Collect(maps.Keys(t.Result.NonFinite))...)
	})
}

// unionKeys returns the sorted union of keys(t) over the trials.
func unionKeys(trials []api.Trial, keys func(api.Trial) []string) []string {
	set := map[string]bool{}
	for _, t := range trials {
		for _, k := range keys(t) {
			set[k] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Columns returns the names of the parameter and metric columns TrialsCSV
// and TrialsParquet write for these trials: a parameter a metric shares a
// name with is param.<name>.
func Columns(trials []api.Trial) (params, metrics []string) {
	metrics = Metrics(trials)
	for _, p := range Params(trials) {
		if slices.Contains(metrics, p) {
			p = "param." + p
		}
		params = append(params, p)
	}
	return params, metrics
}

// TrialsJSONL writes one trial record a line, as stored: every field,
// attempts and late results included.
func TrialsJSONL(w io.Writer, trials []api.Trial) error {
	enc := json.NewEncoder(w)
	for i := range trials {
		if err := enc.Encode(&trials[i]); err != nil {
			return err
		}
	}
	return nil
}

// TrialsCSV writes one row a trial: trial, index, state, seed, attempts,
// one column a parameter (param.<name> when a metric has the same name),
// objective, one column a metric, and error. It is the input of
// asymptote fit.
func TrialsCSV(w io.Writer, trials []api.Trial) error {
	params, metrics := Params(trials), Metrics(trials)
	cw := csv.NewWriter(w)
	head := []string{"trial", "index", "state", "seed", "attempts"}
	// A metric and a parameter may share a name (a method reports the
	// exact "params" it built from a "params" it was asked for). The
	// metric, being measured, keeps the plain name, so analysis reads
	// it by default; the parameter's column becomes param.<name>.
	isMetric := map[string]bool{}
	for _, m := range metrics {
		isMetric[m] = true
	}
	for _, p := range params {
		if isMetric[p] {
			p = "param." + p
		}
		head = append(head, p)
	}
	head = append(head, "objective")
	head = append(head, metrics...)
	head = append(head, "error")
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, t := range trials {
		row := []string{t.ID, strconv.Itoa(t.Index), string(t.State), strconv.FormatInt(t.Seed, 10), strconv.Itoa(t.Attempt)}
		for _, p := range params {
			row = append(row, formatCSV(t.Params[p]))
		}
		if t.Result != nil && t.Result.Objective != nil {
			row = append(row, strconv.FormatFloat(*t.Result.Objective, 'g', -1, 64))
		} else {
			row = append(row, "")
		}
		for _, m := range metrics {
			v := ""
			if t.Result != nil {
				if x, ok := t.Result.Metrics[m]; ok {
					v = strconv.FormatFloat(x, 'g', -1, 64)
				} else if word, ok := t.Result.NonFinite[m]; ok {
					v = word // NaN, +Inf or -Inf, as strconv.ParseFloat reads them
				}
			}
			row = append(row, v)
		}
		row = append(row, t.Error)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// formatCSV writes a value in full precision.
func formatCSV(v any) string { return Format(v, -1) }

// Format writes a parameter value: a number with prec significant digits
// (-1: as many as it takes to read it back exactly), a string as it is.
func Format(v any, prec int) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'g', prec, 64)
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}
