package httpapi

import (
	"cmp"
	"math"
	"slices"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// table is a study's trials by index, as the trial cache keeps them,
// changed in place where no reader holds them. A deleted trial leaves a
// hole (an empty key) until the next read closes it.
//
// A trial is kept as a cachedTrial: the fields the table formats carry,
// with its parameters and metrics as values at the places of their names
// in the table's two lists, instead of two maps a trial: about 0.3 KB a
// trial, where the decoded records took 1.1 KB. Columns are written from
// this form; the other formats read records made from it again.
type table struct {
	rows []cachedTrial
	keys []string       // rows[i]'s etcd key
	pos  map[string]int // a key's place in rows
	// params and metrics are the names the trials' values are placed by,
	// in the order they were first seen; only ever appended to, so a
	// reader's slice of them stays as it was.
	params, metrics []string
	paramAt         map[string]int
	metricAt        map[string]int
	// shared: rows were handed to a reader, so a change copies them
	// first; tidy: rows have no holes and are in index order.
	shared, tidy bool
}

// cachedTrial is one trial of a table.
type cachedTrial struct {
	id      string
	state   sweep.State
	err     string
	index   int
	attempt int
	seed    int64
	updated time.Time
	// result: the record has a result; objective is set when
	// hasObjective.
	result, hasObjective bool
	objective            float64
	// params[i] is the value of the table's params[i], noParam where the
	// trial has none (a shorter slice: none past its end either);
	// metrics[i] that of metrics[i], NaN where it has none (a stored
	// metric is always finite: the others are in nonFinite).
	params    []any
	metrics   []float64
	nonFinite map[string]string
}

// noParam marks a parameter a trial does not have (nil is a parameter
// that is null).
var noParam any = &struct{ none byte }{}

func newTable(n int) table {
	return table{rows: make([]cachedTrial, 0, n), keys: make([]string, 0, n), pos: make(map[string]int, n),
		paramAt: map[string]int{}, metricAt: map[string]int{}, tidy: true}
}

// place returns name's place in names, adding it at the end when new.
func place(names *[]string, at map[string]int, name string) int {
	if i, ok := at[name]; ok {
		return i
	}
	at[name] = len(*names)
	*names = append(*names, name)
	return len(*names) - 1
}

// compact turns a decoded record into the table's form.
func (tb *table) compact(t api.Trial) cachedTrial {
	c := cachedTrial{id: t.ID, state: t.State, err: t.Error, index: t.Index, attempt: t.Attempt, seed: t.Seed, updated: t.Updated}
	if len(t.Params) > 0 {
		for k := range t.Params {
			place(&tb.params, tb.paramAt, k)
		}
		c.params = make([]any, len(tb.params))
		for i := range c.params {
			c.params[i] = noParam
		}
		for k, v := range t.Params {
			c.params[tb.paramAt[k]] = v
		}
	}
	if r := t.Result; r != nil {
		c.result = true
		if r.Objective != nil {
			c.hasObjective, c.objective = true, *r.Objective
		}
		if len(r.Metrics) > 0 {
			for k := range r.Metrics {
				place(&tb.metrics, tb.metricAt, k)
			}
			c.metrics = make([]float64, len(tb.metrics))
			for i := range c.metrics {
				c.metrics[i] = math.NaN()
			}
			for k, v := range r.Metrics {
				c.metrics[tb.metricAt[k]] = v
			}
		}
		if len(r.NonFinite) > 0 {
			c.nonFinite = r.NonFinite
		}
	}
	return c
}

// put writes t under key.
func (tb *table) put(key string, t api.Trial) {
	c := tb.compact(t)
	if p, ok := tb.pos[key]; ok {
		tb.own()
		if tb.rows[p].index != c.index {
			tb.tidy = false
		}
		tb.rows[p] = c
		return
	}
	// Appending leaves what readers hold as it was: their slices end
	// before it.
	if n := len(tb.rows); n > 0 && tb.rows[n-1].index > c.index {
		tb.tidy = false
	}
	tb.pos[key] = len(tb.rows)
	tb.rows = append(tb.rows, c)
	tb.keys = append(tb.keys, key)
}

// remove deletes key's trial, leaving a hole.
func (tb *table) remove(key string) {
	p, ok := tb.pos[key]
	if !ok {
		return
	}
	tb.own()
	delete(tb.pos, key)
	tb.rows[p], tb.keys[p] = cachedTrial{}, ""
	tb.tidy = false
}

// own copies the rows if a reader holds them.
func (tb *table) own() {
	if tb.shared {
		tb.rows, tb.shared = slices.Clone(tb.rows), false
	}
}

// read returns the rows by index, without holes, for a reader to keep.
func (tb *table) read() tableView {
	if !tb.tidy {
		live := make([]int, 0, len(tb.pos))
		for i, k := range tb.keys {
			if k != "" {
				live = append(live, i)
			}
		}
		slices.SortStableFunc(live, func(i, j int) int { return cmp.Compare(tb.rows[i].index, tb.rows[j].index) })
		rows, keys := make([]cachedTrial, len(live)), make([]string, len(live))
		for n, i := range live {
			rows[n], keys[n] = tb.rows[i], tb.keys[i]
			tb.pos[keys[n]] = n
		}
		tb.rows, tb.keys, tb.tidy = rows, keys, true
	}
	tb.shared = true
	return tableView{rows: tb.rows, params: tb.params, metrics: tb.metrics}
}

// tableView is what a reader of a table holds: its rows and names as
// they were, shared with the table, which never changes them in place.
type tableView struct {
	rows            []cachedTrial
	params, metrics []string
}

// trials returns the rows as trial records with the table's fields, new
// ones the caller may change.
func (v tableView) trials() []api.Trial {
	out := make([]api.Trial, len(v.rows))
	for i := range v.rows {
		c := &v.rows[i]
		t := api.Trial{ID: c.id, Index: c.index, Seed: c.seed, State: c.state, Attempt: c.attempt, Error: c.err, Updated: c.updated}
		if len(c.params) > 0 {
			t.Params = make(map[string]any, len(c.params))
			for j, val := range c.params {
				if val != noParam {
					t.Params[v.params[j]] = val
				}
			}
		}
		if c.result {
			r := &api.Result{NonFinite: c.nonFinite}
			if c.hasObjective {
				obj := c.objective
				r.Objective = &obj
			}
			if len(c.metrics) > 0 {
				r.Metrics = make(map[string]float64, len(c.metrics))
				for j, m := range c.metrics {
					if !math.IsNaN(m) {
						r.Metrics[v.metrics[j]] = m
					}
				}
			}
			t.Result = r
		}
		out[i] = t
	}
	return out
}

// columns lays rows lo to hi out as columns, as trialColumns does the
// records (total is every row's count, offset the page's start); with
// only non-nil, of the metrics only those it names.
func (v tableView) columns(lo, hi, offset int, only []string) TrialColumns {
	rows := v.rows[lo:hi]
	n := len(rows)
	c := TrialColumns{Total: len(v.rows), Offset: offset, Count: n,
		ID: make([]string, n), Index: make([]int, n), State: make([]sweep.State, n), Seed: make([]int64, n),
		Attempt: make([]int, n), Updated: make([]int64, n), Objective: make([]*float64, n),
		Params: map[string][]any{}, Metrics: map[string][]*float64{}}
	objectives := make([]float64, n)
	params := make([][]any, len(v.params))
	metrics := make([][]*float64, len(v.metrics))
	values := make([][]float64, len(v.metrics))
	for j, name := range v.metrics {
		if only == nil || slices.Contains(only, name) {
			values[j] = make([]float64, n) // nil: not asked for
		}
	}
	for i := range rows {
		t := &rows[i]
		c.ID[i], c.Index[i], c.State[i], c.Seed[i], c.Attempt[i] = t.id, t.index, t.state, t.seed, t.attempt
		c.Updated[i] = t.updated.UnixMicro()
		for j, val := range t.params {
			if val == noParam {
				continue
			}
			if params[j] == nil {
				params[j] = make([]any, n)
			}
			params[j][i] = val
		}
		if !t.result {
			continue
		}
		if t.hasObjective {
			objectives[i] = t.objective
			c.Objective[i] = &objectives[i]
		}
		for j, m := range t.metrics {
			if math.IsNaN(m) || math.IsInf(m, 0) || values[j] == nil {
				continue
			}
			if metrics[j] == nil {
				metrics[j] = make([]*float64, n)
			}
			values[j][i] = m
			metrics[j][i] = &values[j][i]
		}
	}
	for j, col := range params {
		if col != nil {
			c.Params[v.params[j]] = col
		}
	}
	for j, col := range metrics {
		if col != nil {
			c.Metrics[v.metrics[j]] = col
		}
	}
	return c
}
