package httpapi

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io"
	"iter"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// TrialColumns is the compact bulk form of a page of trials
// (format=columns): one array a field, the i-th entry of each belonging
// to the i-th trial, as the history's chunks hold a curve. It carries
// what a table of a large study shows; the full records (attempts,
// checkpoints, errors) are the other formats'.
type TrialColumns struct {
	Total  int `json:"total"`
	Offset int `json:"offset"`
	// Count is the number of trials in the page: the length of every
	// array below.
	Count   int           `json:"count"`
	ID      []string      `json:"id"`
	Index   []int         `json:"index"`
	State   []sweep.State `json:"state"`
	Seed    []int64       `json:"seed"`
	Attempt []int         `json:"attempt"`
	// Updated is when each record last changed, in Unix microseconds.
	Updated []int64 `json:"updated"`
	// Objective is null for a trial without one.
	Objective []*float64 `json:"objective"`
	// Params and Metrics are by name, null where a trial has none of that
	// name (or, for a metric, a value that is not finite).
	Params  map[string][]any      `json:"params"`
	Metrics map[string][]*float64 `json:"metrics"`
}

// trialColumns lays trials out as columns; with only non-nil, of the
// metrics only those it names.
func trialColumns(trials []api.Trial, total, offset int, only []string) TrialColumns {
	n := len(trials)
	c := TrialColumns{Total: total, Offset: offset, Count: n,
		ID: make([]string, n), Index: make([]int, n), State: make([]sweep.State, n), Seed: make([]int64, n),
		Attempt: make([]int, n), Updated: make([]int64, n), Objective: make([]*float64, n),
		Params: map[string][]any{}, Metrics: map[string][]*float64{}}
	for i := range trials {
		t := &trials[i]
		c.ID[i], c.Index[i], c.State[i], c.Seed[i], c.Attempt[i] = t.ID, t.Index, t.State, t.Seed, t.Attempt
		c.Updated[i] = t.Updated.UnixMicro()
		for k, v := range t.Params {
			col := c.Params[k]
			if col == nil {
				col = make([]any, n)
				c.Params[k] = col
			}
			col[i] = v
		}
		if t.Result == nil {
			continue
		}
		c.Objective[i] = t.Result.Objective
		for k, v := range t.Result.Metrics {
			if math.IsNaN(v) || math.IsInf(v, 0) || (only != nil && !slices.Contains(only, k)) {
				continue
			}
			col := c.Metrics[k]
			if col == nil {
				col = make([]*float64, n)
				c.Metrics[k] = col
			}
			col[i] = &v
		}
	}
	return c
}

// writeColumns writes c one column at a time, so that no buffer holds the
// whole document (tens of megabytes for 100,000 trials), compressed
// (gzip) when the client accepts it. An error is the client's going away.
func writeColumns(w http.ResponseWriter, r *http.Request, c TrialColumns) error {
	w.Header().Set("Content-Type", "application/json")
	out, done := compress(w, r)
	bw := bufio.NewWriterSize(out, 1<<16)
	defer done()
	enc := json.NewEncoder(bw)
	fields := []struct {
		name string
		v    any
	}{
		{"total", c.Total}, {"offset", c.Offset}, {"count", c.Count}, {"id", c.ID}, {"index", c.Index}, {"state", c.State},
		{"seed", c.Seed}, {"attempt", c.Attempt}, {"updated", c.Updated}, {"objective", c.Objective},
	}
	for i, f := range fields {
		sep := ","
		if i == 0 {
			sep = "{"
		}
		_, _ = bw.WriteString(sep + `"` + f.name + `":`)
		if err := enc.Encode(f.v); err != nil {
			return err
		}
	}
	for _, group := range []struct {
		name string
		cols iter.Seq2[string, any]
	}{
		{"params", sortedColumns(c.Params)}, {"metrics", sortedColumns(c.Metrics)},
	} {
		_, _ = bw.WriteString(`,"` + group.name + `":{`)
		first := true
		for name, col := range group.cols {
			if !first {
				_ = bw.WriteByte(',')
			}
			first = false
			b, _ := json.Marshal(name)
			_, _ = bw.Write(append(b, ':'))
			if err := enc.Encode(col); err != nil {
				return err
			}
		}
		_ = bw.WriteByte('}')
	}
	_, _ = bw.WriteString("}\n")
	return bw.Flush()
}

// sortedColumns yields the columns of m in the order of their names.
func sortedColumns[T any](m map[string][]T) iter.Seq2[string, any] {
	return func(yield func(string, any) bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

// compress returns where to write w's body: through gzip, at its fastest
// level, when r accepts it (a browser always does: a 100,000-trial table
// is 11 MB as JSON and 2 MB compressed, and a browser takes the bytes in
// far slower than a server on the same machine writes them), else w
// itself. done ends the compressed stream; call it after the last write.
func compress(w http.ResponseWriter, r *http.Request) (out io.Writer, done func()) {
	w.Header().Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		return w, func() {}
	}
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Del("Content-Length")
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // the level is valid
	return gz, func() { _ = gz.Close() }
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip: it
// names gzip (or *) with no weight or one above 0.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if name = strings.TrimSpace(name); !strings.EqualFold(name, "gzip") && name != "*" {
			continue
		}
		w, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if !ok {
			return true
		}
		q, err := strconv.ParseFloat(w, 64)
		return err == nil && q > 0
	}
	return false
}
