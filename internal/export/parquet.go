package export

import (
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/parquet-go/parquet-go"

	"asymptote.dev/asymptote/internal/api"
)

// TrialsParquet writes trials as a Parquet file with one row a trial and the
// columns of the CSV export: trial, index, state, seed, attempts, one a
// parameter (param.<name> when a metric has the same name), objective, one
// a metric, and error. Numbers are doubles (NaN and the infinities kept),
// a parameter whose values are all strings or all bools has that type, and
// one of mixed types is a string.
func TrialsParquet(w io.Writer, trials []api.Trial) error {
	params, metrics := Params(trials), Metrics(trials)
	isMetric := map[string]bool{}
	for _, m := range metrics {
		isMetric[m] = true
	}
	type column struct {
		name  string
		node  parquet.Node
		value func(t *api.Trial) (parquet.Value, bool)
	}
	cols := []column{
		{"trial", parquet.String(), func(t *api.Trial) (parquet.Value, bool) { return parquet.ByteArrayValue([]byte(t.ID)), true }},
		{"index", parquet.Int(64), func(t *api.Trial) (parquet.Value, bool) { return parquet.Int64Value(int64(t.Index)), true }},
		{"state", parquet.String(), func(t *api.Trial) (parquet.Value, bool) { return parquet.ByteArrayValue([]byte(t.State)), true }},
		{"seed", parquet.Int(64), func(t *api.Trial) (parquet.Value, bool) { return parquet.Int64Value(t.Seed), true }},
		{"attempts", parquet.Int(64), func(t *api.Trial) (parquet.Value, bool) { return parquet.Int64Value(int64(t.Attempt)), true }},
	}
	for _, p := range params {
		name := p
		if isMetric[p] {
			name = "param." + p
		}
		kind := paramKind(trials, p)
		col := column{name: name}
		switch kind {
		case "string":
			col.node = parquet.Optional(parquet.String())
			col.value = func(t *api.Trial) (parquet.Value, bool) {
				v, ok := t.Params[p]
				if !ok {
					return parquet.Value{}, false
				}
				if s, isStr := v.(string); isStr {
					return parquet.ByteArrayValue([]byte(s)), true
				}
				return parquet.ByteArrayValue([]byte(formatCSV(v))), true
			}
		case "bool":
			col.node = parquet.Optional(parquet.Leaf(parquet.BooleanType))
			col.value = func(t *api.Trial) (parquet.Value, bool) {
				b, ok := t.Params[p].(bool)
				return parquet.BooleanValue(b), ok
			}
		default:
			col.node = parquet.Optional(parquet.Leaf(parquet.DoubleType))
			col.value = func(t *api.Trial) (parquet.Value, bool) {
				f, ok := t.Params[p].(float64)
				return parquet.DoubleValue(f), ok
			}
		}
		cols = append(cols, col)
	}
	cols = append(cols, column{"objective", parquet.Optional(parquet.Leaf(parquet.DoubleType)), func(t *api.Trial) (parquet.Value, bool) {
		if t.Result == nil || t.Result.Objective == nil {
			return parquet.Value{}, false
		}
		return parquet.DoubleValue(*t.Result.Objective), true
	}})
	for _, m := range metrics {
		cols = append(cols, column{m, parquet.Optional(parquet.Leaf(parquet.DoubleType)), func(t *api.Trial) (parquet.Value, bool) {
			if t.Result == nil {
				return parquet.Value{}, false
			}
			if x, ok := t.Result.Metrics[m]; ok {
				return parquet.DoubleValue(x), true
			}
			if word, ok := t.Result.NonFinite[m]; ok {
				return parquet.DoubleValue(nonFiniteValue(word)), true
			}
			return parquet.Value{}, false
		}})
	}
	cols = append(cols, column{"error", parquet.Optional(parquet.String()), func(t *api.Trial) (parquet.Value, bool) {
		return parquet.ByteArrayValue([]byte(t.Error)), t.Error != ""
	}})

	group := parquet.Group{}
	for _, c := range cols {
		if _, dup := group[c.name]; dup {
			return fmt.Errorf("parquet: two columns named %q", c.name)
		}
		group[c.name] = c.node
	}
	schema := parquet.NewSchema("trials", group)
	// The schema orders columns by name; find each one's index.
	index := map[string]int{}
	for i, path := range schema.Columns() {
		index[path[0]] = i
	}
	slices.SortFunc(cols, func(a, b column) int { return index[a.name] - index[b.name] })
	pw := parquet.NewWriter(w, schema)
	rows := make([]parquet.Row, 0, 1024)
	flush := func() error {
		if _, err := pw.WriteRows(rows); err != nil {
			return err
		}
		rows = rows[:0]
		return nil
	}
	for i := range trials {
		row := make(parquet.Row, len(cols))
		for j, c := range cols {
			v, ok := c.value(&trials[i])
			optional := c.node.Optional()
			switch {
			case !ok:
				row[j] = parquet.Value{}.Level(0, 0, j)
			case optional:
				row[j] = v.Level(0, 1, j)
			default:
				row[j] = v.Level(0, 0, j)
			}
		}
		rows = append(rows, row)
		if len(rows) == cap(rows) {
			if err := flush(); err != nil {
				return fmt.Errorf("parquet: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}

// paramKind is the Parquet type of a parameter's column: "float", "string"
// or "bool" when every trial that has it agrees, and "string" when they
// do not.
func paramKind(trials []api.Trial, p string) string {
	kind := ""
	for i := range trials {
		v, ok := trials[i].Params[p]
		if !ok {
			continue
		}
		k := "string"
		switch v.(type) {
		case float64:
			k = "float"
		case bool:
			k = "bool"
		}
		if kind != "" && kind != k {
			return "string"
		}
		kind = k
	}
	return kind
}

func nonFiniteValue(word string) float64 {
	switch word {
	case "+Inf":
		return math.Inf(1)
	case "-Inf":
		return math.Inf(-1)
	}
	return math.NaN()
}
