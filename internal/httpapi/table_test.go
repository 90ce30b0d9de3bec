package httpapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/export"
)

// tableRecords are trial records of every shape the table must keep
// exactly: parameters of each JSON type (null and nested ones too), a
// parameter name first seen late, no parameters, no result, a result
// without an objective, non-finite metrics, an empty result, a time with
// an offset.
var tableRecords = []string{
	`{"id":"a","index":0,"params":{"x":1,"s":"str","b":true,"n":null},"seed":1,"state":"succeeded","attempt":1,"result":{"objective":2.5,"metrics":{"loss":2.5,"acc":0.9}},"updated":"2026-01-02T03:04:05.123456Z"}`,
	`{"id":"b","index":1,"state":"pending","updated":"2026-01-02T03:04:06Z"}`,
	`{"id":"c","index":2,"params":{"x":2},"seed":3,"state":"succeeded","attempt":2,"result":{"metrics":{"loss":1},"non_finite":{"acc":"NaN"}},"updated":"2026-01-02T05:04:05+02:00"}`,
	`{"id":"d","index":3,"params":{"y":"late"},"state":"failed","error":"boom","result":{"objective":null,"metrics":{}},"updated":"2026-01-02T03:04:07Z"}`,
	`{"id":"e","index":4,"params":{"x":[1,2],"z":{"k":1}},"state":"running","attempt":1,"updated":"2026-01-02T03:04:08Z"}`,
	`{"id":"f","index":5,"params":{"x":3,"y":"z"},"state":"succeeded","attempt":1,"result":{"objective":-1e-300,"metrics":{"acc":1e300}},"updated":"2026-01-02T03:04:09Z"}`,
}

func decodeAll(t testing.TB, records []string) []api.Trial {
	t.Helper()
	out := make([]api.Trial, len(records))
	for i, r := range records {
		tr, err := decodeRow([]byte(r))
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out[i] = tr
	}
	return out
}

// TestTableKeepsWhatTheFormatsCarry checks that a table, from its own
// form, writes the same columns (every page, every metric filter) as
// the decoded records do, and gives back records that write the same
// CSV and Parquet.
func TestTableKeepsWhatTheFormatsCarry(t *testing.T) {
	trials := decodeAll(t, tableRecords)
	tb := newTable(0)
	for _, tr := range trials {
		tb.put("k/"+tr.ID, tr)
	}
	v := tb.read()
	n := len(trials)
	for _, only := range [][]string{nil, {"acc"}, {""}, {"loss", "missing"}} {
		for lo := 0; lo <= n; lo++ {
			for hi := lo; hi <= n; hi++ {
				want, _ := json.Marshal(trialColumns(trials[lo:hi], n, lo, only))
				got, _ := json.Marshal(v.columns(lo, hi, lo, only))
				if !bytes.Equal(got, want) {
					t.Fatalf("columns %d:%d, metrics %q:\n got %s\nwant %s", lo, hi, only, got, want)
				}
			}
		}
	}
	for name, write := range map[string]func(*bytes.Buffer, []api.Trial) error{
		"csv":     func(b *bytes.Buffer, ts []api.Trial) error { return export.TrialsCSV(b, ts) },
		"parquet": func(b *bytes.Buffer, ts []api.Trial) error { return export.TrialsParquet(b, ts) },
	} {
		var want, got bytes.Buffer
		if err := write(&want, trials); err != nil {
			t.Fatal(err)
		}
		if err := write(&got, v.trials()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%s from the table differs from the records' (%d and %d bytes)", name, got.Len(), want.Len())
		}
	}
}

// TestTableChanges checks that a change a reader's view was taken before
// leaves the view as it was, and that the next view has it: a trial
// rewritten with other parameters, one removed, one added out of index
// order.
func TestTableChanges(t *testing.T) {
	trials := decodeAll(t, tableRecords)
	tb := newTable(0)
	for _, tr := range trials[:4] {
		tb.put("k/"+tr.ID, tr)
	}
	before := tb.read()
	wantBefore, _ := json.Marshal(trialColumns(trials[:4], 4, 0, nil))

	changed := decodeAll(t, []string{`{"id":"a","index":0,"params":{"w":9},"state":"failed","updated":"2026-01-03T00:00:00Z"}`})[0]
	tb.put("k/a", changed)
	tb.remove("k/c")
	tb.put("k/"+trials[5].ID, trials[5])
	tb.put("k/"+trials[4].ID, trials[4]) // index 4 after index 5
	after := tb.read()

	if got, _ := json.Marshal(before.columns(0, len(before.rows), 0, nil)); !bytes.Equal(got, wantBefore) {
		t.Errorf("a view changed after it was taken:\n got %s\nwant %s", got, wantBefore)
	}
	want := []api.Trial{changed, trials[1], trials[3], trials[4], trials[5]}
	wantAfter, _ := json.Marshal(trialColumns(want, len(want), 0, nil))
	if got, _ := json.Marshal(after.columns(0, len(after.rows), 0, nil)); !bytes.Equal(got, wantAfter) {
		t.Errorf("after the changes:\n got %s\nwant %s", got, wantAfter)
	}
	var ids []string
	for _, tr := range after.trials() {
		ids = append(ids, fmt.Sprint(tr.Index, tr.ID))
	}
	if fmt.Sprint(ids) != "[0a 1b 3d 4e 5f]" {
		t.Errorf("trials after the changes: %v, want [0a 1b 3d 4e 5f] (by index)", ids)
	}
}

// FuzzTable holds a table to writing, from its own form, the columns and
// the CSV that the record it was given writes, for any record the
// decoder reads, alone and after the records of every shape.
func FuzzTable(f *testing.F) {
	for _, b := range rowSeeds(f) {
		f.Add(b)
	}
	for _, r := range tableRecords {
		f.Add([]byte(r))
	}
	base := decodeAll(f, tableRecords)
	f.Fuzz(func(t *testing.T, b []byte) {
		var d rowDecoder
		tr, err := d.decode(b)
		if err != nil {
			return
		}
		for _, before := range [][]api.Trial{nil, base} {
			trials := append(slices.Clone(before), tr)
			tb := newTable(0)
			for i, x := range trials {
				tb.put(fmt.Sprint("k/", i), x)
			}
			v := tb.read()
			// The table puts its rows in index order, stably.
			slices.SortStableFunc(trials, func(a, b api.Trial) int { return cmp.Compare(a.Index, b.Index) })
			want, _ := json.Marshal(trialColumns(trials, len(trials), 0, nil))
			got, _ := json.Marshal(v.columns(0, len(v.rows), 0, nil))
			if !bytes.Equal(got, want) {
				t.Fatalf("%q: columns\n got %s\nwant %s", b, got, want)
			}
			var wcsv, gcsv bytes.Buffer
			werr, gerr := export.TrialsCSV(&wcsv, trials), export.TrialsCSV(&gcsv, v.trials())
			if (werr != nil) != (gerr != nil) || !bytes.Equal(gcsv.Bytes(), wcsv.Bytes()) {
				t.Fatalf("%q: CSV\n got %s (%v)\nwant %s (%v)", b, gcsv.Bytes(), gerr, wcsv.Bytes(), werr)
			}
		}
	})
}
