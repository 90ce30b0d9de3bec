package export

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"asymptote.dev/asymptote/internal/api"
)

func TestParquetTrials(t *testing.T) {
	obj := 2.5
	trials := []api.Trial{
		{ID: "a", Index: 0, State: "succeeded", Seed: 1, Attempt: 1, Params: map[string]any{"lr": 0.01, "act": "gelu", "tied": true, "params": 1e6},
			Result: &api.Result{Objective: &obj, Metrics: map[string]float64{"val_loss": 2.5, "params": 1048576}, NonFinite: map[string]string{"grad": "+Inf"}}},
		{ID: "b", Index: 1, State: "failed", Seed: 2, Attempt: 3, Params: map[string]any{"lr": 0.1, "act": 3.0, "tied": false, "params": 1e7}, Error: "boom"},
	}
	var buf bytes.Buffer
	if err := TrialsParquet(&buf, trials); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if f.NumRows() != 2 {
		t.Fatalf("%d rows", f.NumRows())
	}
	cols := map[string]int{}
	for i, c := range f.Schema().Columns() {
		cols[c[0]] = i
	}
	for _, want := range []string{"trial", "index", "state", "seed", "attempts", "lr", "act", "tied", "param.params", "objective", "val_loss", "params", "grad", "error"} {
		if _, ok := cols[want]; !ok {
			t.Errorf("no column %q in %v", want, cols)
		}
	}
	rows := make([]parquet.Row, 2)
	r := parquet.NewReader(bytes.NewReader(buf.Bytes()), f.Schema())
	if n, _ := r.ReadRows(rows); n != 2 {
		t.Fatalf("read %d rows", n)
	}
	get := func(row parquet.Row, col string) parquet.Value {
		for _, v := range row {
			if v.Column() == cols[col] {
				return v
			}
		}
		t.Fatalf("row has no %s", col)
		return parquet.Value{}
	}
	if s := get(rows[0], "trial").String(); s != "a" {
		t.Errorf("trial %q", s)
	}
	if v := get(rows[0], "lr").Double(); v != 0.01 {
		t.Errorf("lr %v", v)
	}
	if v := get(rows[1], "act").String(); v != "3" {
		t.Errorf("act of mixed types should be a string column, got %q", v)
	}
	if !get(rows[0], "tied").Boolean() || get(rows[1], "tied").Boolean() {
		t.Errorf("tied")
	}
	if v := get(rows[0], "params").Double(); v != 1048576 {
		t.Errorf("params metric %v", v)
	}
	if v := get(rows[0], "param.params").Double(); v != 1e6 {
		t.Errorf("params parameter %v", v)
	}
	if v := get(rows[0], "grad").Double(); !math.IsInf(v, 1) {
		t.Errorf("grad %v, want +Inf", v)
	}
	if !get(rows[1], "objective").IsNull() || !get(rows[0], "error").IsNull() {
		t.Errorf("missing values should be null")
	}
	if s := get(rows[1], "error").String(); s != "boom" {
		t.Errorf("error %q", s)
	}
}

func TestParquetHistory(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	rows := []Report{
		{Trial: "a", Attempt: 1, Step: 10, Time: now, Values: map[string]float64{"loss": 2, "acc": 0.5}},
		{Trial: "a", Attempt: 1, Step: 20, Time: now.Add(time.Second), Values: map[string]float64{"loss": 1}, NonFinite: map[string]string{"gn": "NaN"}},
	}
	var buf bytes.Buffer
	if err := HistoryParquet(&buf, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := parquet.Read[Record](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4 (one a metric value)", len(recs))
	}
	if r := recs[0]; r.Metric != "acc" || r.Value != 0.5 || r.Step != 10 || !r.Time.Equal(now) {
		t.Errorf("first record %+v", r)
	}
	if r := recs[2]; r.Metric != "gn" || !math.IsNaN(r.Value) {
		t.Errorf("non-finite record %+v", r)
	}
}
