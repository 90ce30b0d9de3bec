package export

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"

	"asymptote.dev/asymptote/internal/bus"
)

// ReportOf is the history row of a stored metrics report.
func ReportOf(m *bus.MetricsReport) Report {
	return Report{Trial: m.Trial, Attempt: m.Attempt, Step: m.Step, Time: m.Time, Values: m.Values, NonFinite: m.NonFinite}
}

// Report is one metrics report of the history: what a method reported at
// one step of one attempt.
type Report struct {
	Trial     string             `json:"trial"`
	Attempt   int                `json:"attempt"`
	Step      int64              `json:"step"`
	Time      time.Time          `json:"time,omitzero"`
	Values    map[string]float64 `json:"values"`
	NonFinite map[string]string  `json:"non_finite,omitempty"`
}

// Record is one metric value of the history in long form: the
// shape pandas, Polars and DuckDB group and pivot directly.
type Record struct {
	Trial   string    `parquet:"trial"`
	Attempt int64     `parquet:"attempt"`
	Step    int64     `parquet:"step"`
	Time    time.Time `parquet:"time,timestamp(microsecond)"`
	Metric  string    `parquet:"metric"`
	Value   float64   `parquet:"value"`
}

// Records flattens reports into one record a metric value, metrics
// in name order within a report.
func Records(rows []Report) []Record {
	var out []Record
	_ = EachRecord(rows, func(r Record) error {
		out = append(out, r)
		return nil
	})
	return out
}

// EachRecord calls fn with the records Records returns, in its order,
// without keeping them all, and stops at fn's first error.
func EachRecord(rows []Report, fn func(Record) error) error {
	var names []string
	for _, r := range rows {
		names = names[:0]
		for k := range r.Values {
			names = append(names, k)
		}
		for k := range r.NonFinite {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			v, ok := r.Values[k]
			if !ok {
				v = nonFiniteValue(r.NonFinite[k])
			}
			if err := fn(Record{Trial: r.Trial, Attempt: int64(r.Attempt), Step: r.Step, Time: r.Time, Metric: k, Value: v}); err != nil {
				return err
			}
		}
	}
	return nil
}

// HistoryParquet writes the history in long form.
func HistoryParquet(w io.Writer, rows []Report) error {
	pw := parquet.NewGenericWriter[Record](w)
	recs := Records(rows)
	for len(recs) > 0 {
		n := min(len(recs), 4096)
		if _, err := pw.Write(recs[:n]); err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
		recs = recs[n:]
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}

// HistoryJSONL writes one report a line.
func HistoryJSONL(w io.Writer, rows []Report) error {
	enc := json.NewEncoder(w)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return err
		}
	}
	return nil
}

// HistoryCSV writes the history in long form, one row a metric value:
// trial, attempt, step, time, metric, value.
func HistoryCSV(w io.Writer, rows []Report) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"trial", "attempt", "step", "time", "metric", "value"})
	// A report's values share its trial, attempt, step and time: those
	// are formatted once a report, and one row's fields serve every row.
	var (
		last   Record
		fields = make([]string, 6)
		num    []byte
	)
	err := EachRecord(rows, func(r Record) error {
		if r.Trial != last.Trial || r.Attempt != last.Attempt || r.Step != last.Step || !r.Time.Equal(last.Time) || fields[0] == "" {
			fields[0] = r.Trial
			fields[1] = strconv.FormatInt(r.Attempt, 10)
			fields[2] = strconv.FormatInt(r.Step, 10)
			fields[3] = ""
			if !r.Time.IsZero() {
				fields[3] = r.Time.UTC().Format(time.RFC3339Nano)
			}
			last = r
		}
		num = strconv.AppendFloat(num[:0], r.Value, 'g', -1, 64)
		fields[4], fields[5] = r.Metric, string(num)
		return cw.Write(fields)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}
