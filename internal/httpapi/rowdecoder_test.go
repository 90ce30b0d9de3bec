package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// rowSeeds are records the decoder reads itself and records it must leave
// to encoding/json.
func rowSeeds(t testing.TB) [][]byte {
	now := time.Date(2026, 12, 7, 8, 30, 0, 123456789, time.UTC)
	obj := 2.5
	full, err := json.Marshal(api.Trial{ID: "t1", Study: "s", Index: 7, Seed: -3, State: sweep.Succeeded, Attempt: 2, Error: "x <y> ünï",
		Params:   map[string]any{"lr": 3e-4, "name": "a", "on": true, "off": false, "none": nil, "list": []any{1.0, "b"}, "nested": map[string]any{"k": 2.0}},
		Attempts: []api.Attempt{{N: 1, Node: "n", Dispatched: now, Notes: []string{`"}]`}}},
		Result:   &api.Result{Objective: &obj, Metrics: map[string]float64{"val_loss": 2.5, "big": 1e308, "small": -5e-324}, NonFinite: map[string]string{"g": "NaN"}, Recorded: now},
		Created:  now, Updated: now})
	if err != nil {
		t.Fatal(err)
	}
	bare, _ := json.Marshal(api.Trial{ID: "t2"})
	return [][]byte{full, bare,
		[]byte(` { "index" : 3 , "id" : "a" , "params" : { "x" : 1.5 } } `),
		[]byte(`{"id":"a\u0041","params":{"x\n":1},"state":"run\"ning"}`),
		[]byte(`{"ID":"upper","Index":4}`),
		[]byte(`{"index":1,"index":2}`),
		[]byte(`{"params":{"a":1},"params":{"b":2}}`),
		[]byte(`{"index":1.5}`), []byte(`{"index":1e2}`), []byte(`{"index":"3"}`), []byte(`{"index":99999999999999999999}`),
		[]byte(`{"seed":null,"index":null,"state":null,"id":null,"params":null,"result":null,"updated":null}`),
		[]byte(`{"result":{"objective":null,"metrics":null}}`), []byte(`{"result":{"metrics":{"a":null}}}`),
		[]byte(`{"result":{"metrics":{"a":1e999}}}`), []byte(`{"result":{"non_finite":{"a":1}}}`), []byte(`{"result":{"Metrics":{"a":1}}}`),
		[]byte(`{"result":[]}`), []byte(`{"params":[1]}`), []byte(`{"params":{"a":-}}`), []byte(`[1,2]`), []byte(`"x"`), []byte(`null`),
		[]byte(`{"updated":"yesterday"}`), []byte(`{"updated":"2026-12-07T08:30:00+01:00"}`),
		[]byte("{\"id\":\"\xff\xfe\"}"), []byte(`{"id":"a"`), []byte(``), []byte(`{"late":[{"x":"}"}],"index":5,"checkpoints":{"a":[[]]}}`),
	}
}

// FuzzRowDecoder checks that the decoder reads every input as
// encoding/json reads it into a row: the same fields, or an error both.
func FuzzRowDecoder(f *testing.F) {
	seeds := rowSeeds(f)
	for _, b := range seeds {
		f.Add(b)
	}
	// The records the store writes are read without encoding/json.
	for _, b := range seeds[:3] {
		var d rowDecoder
		if _, err := d.record(b); err != nil {
			f.Errorf("%s: left to encoding/json: %v", b, err)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d rowDecoder
		got, gerr := d.decode(b)
		want, werr := decodeRow(b)
		if (gerr != nil) != (werr != nil) {
			t.Fatalf("%q: error %v, encoding/json's %v", b, gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %#v\nwant %#v", b, got, want)
		}
	})
}

// TestRowDecoderShares checks that the names repeated across records are
// kept once, which is what makes the cache smaller.
func TestRowDecoderShares(t *testing.T) {
	var d rowDecoder
	a, err := d.decode([]byte(`{"id":"a","state":"succeeded","params":{"lr":1},"result":{"metrics":{"val_loss":2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.decode([]byte(`{"id":"b","state":"succeeded","params":{"lr":2},"result":{"metrics":{"val_loss":3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	same := func(x, y string) bool { return len(x) > 0 && unsafeData(x) == unsafeData(y) }
	if !same(string(a.State), string(b.State)) {
		t.Error("state not shared")
	}
	for k := range a.Params {
		for k2 := range b.Params {
			if !same(k, k2) {
				t.Error("parameter name not shared")
			}
		}
	}
	for k := range a.Result.Metrics {
		for k2 := range b.Result.Metrics {
			if !same(k, k2) {
				t.Error("metric name not shared")
			}
		}
	}
}

func unsafeData(s string) *byte { return unsafe.StringData(s) }

// BenchmarkRowDecoder reads the record a finished synthetic trial leaves
// in etcd, with the decoder and with encoding/json.
//
//	go test ./internal/httpapi -run '^$' -bench RowDecoder
func BenchmarkRowDecoder(b *testing.B) {
	now := time.Now()
	obj := 2.5
	rec, err := json.Marshal(api.Trial{ID: "00000000000000012345", Study: "big", Index: 12345, Method: "synthetic", State: sweep.Succeeded, Attempt: 1, Seed: 5,
		Params:   map[string]any{"params": 3e6, "weight_decay": 0.3, "tokens": 2e9, "steps": 34.0},
		Attempts: []api.Attempt{{N: 1, State: api.AttemptSucceeded, Node: "dev-1", Dispatched: now, Ended: &now}},
		Result: &api.Result{Attempt: 1, Node: "dev-1", Objective: &obj, Recorded: now,
			Metrics: map[string]float64{"val_loss": obj, "train_loss": obj * 0.9, "params": 3e6, "tokens": 2e9, "flops": 3.6e16}},
		Created: now, Updated: now})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decoder", func(b *testing.B) {
		var d rowDecoder
		for b.Loop() {
			if _, err := d.decode(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeRow(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
