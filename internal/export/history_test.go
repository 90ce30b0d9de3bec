package export_test

import (
	"bytes"
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
