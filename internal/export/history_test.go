package export_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/export"
)

// TestHistoryCSV checks the long form row by row: metrics in name order,
// non-finite values spelled out, a report's trial, step and time on each of
// its rows (also where the next report shares all but one of them), no time
// where none was recorded, and names CSV must quote.
func TestHistoryCSV(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 500, time.FixedZone("x", 3600))
	rows := []export.Report{
		{Trial: "a", Attempt: 1, Step: 1, Time: t0, Values: map[string]float64{"val_loss": 2.5, "lr": 3e-4}, NonFinite: map[string]string{"grad": "NaN"}},
		{Trial: "a", Attempt: 1, Step: 1, Time: t0.Add(time.Second), Values: map[string]float64{"val_loss": 2.4}},
		{Trial: "a", Attempt: 2, Step: 1, Time: t0.Add(time.Second), Values: map[string]float64{"val_loss": 2.3}},
		{Trial: "b,c", Attempt: 1, Step: 7, Values: map[string]float64{`odd "name"`: -1e300}, NonFinite: map[string]string{"x": "-Inf"}},
	}
	var buf bytes.Buffer
	if err := export.HistoryCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	want := `trial,attempt,step,time,metric,value
a,1,1,2026-12-07T07:00:00.0000005Z,grad,NaN
a,1,1,2026-12-07T07:00:00.0000005Z,lr,0.0003
a,1,1,2026-12-07T07:00:00.0000005Z,val_loss,2.5
a,1,1,2026-12-07T07:00:01.0000005Z,val_loss,2.4
a,2,1,2026-12-07T07:00:01.0000005Z,val_loss,2.3
"b,c",1,7,,"odd ""name""",-1e+300
"b,c",1,7,,x,-Inf
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// BenchmarkHistoryCSV writes the history of 10,000 trials of 100 steps,
// three values a step, as the API's format=csv does once it has read it.
//
//	go test ./internal/export -run '^$' -bench HistoryCSV -benchtime 3x
func BenchmarkHistoryCSV(b *testing.B) {
	now := time.Now()
	rows := make([]export.Report, 0, 10_000*100)
	for i := range 10_000 {
		for s := 1; s <= 100; s++ {
			rows = append(rows, export.Report{Trial: fmt.Sprintf("%020x", i), Attempt: 1, Step: int64(s), Time: now,
				Values: map[string]float64{"val_loss": 3 + 1/float64(s), "train_loss": 2.9 + 1/float64(s), "tokens": float64(s) * 1e7}})
		}
	}
	for b.Loop() {
		if err := export.HistoryCSV(io.Discard, rows); err != nil {
			b.Fatal(err)
		}
	}
}
