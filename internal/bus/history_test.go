package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/devcluster"
)

func historyJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	cl, err := devcluster.Start(t.Context(), devcluster.Config{DataDir: t.TempDir(), NATSPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	nc, err := nats.Connect(cl.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.DeclareHistory(t.Context(), js, 1, 0); err != nil {
		t.Fatal(err)
	}
	return js
}

func publishReport(t *testing.T, js jetstream.JetStream, r *bus.MetricsReport, id string) {
	t.Helper()
	if _, err := js.Publish(t.Context(), bus.MetricsSubject(r.Study, r.Trial, "n1"), bus.Encode(r), jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}

// TestHistory keeps every report per study and trial, passes each once
// (a repeat past the server's duplicate window, under another message ID,
// too), reads one trial or a whole study, and purges a deleted study.
func TestHistory(t *testing.T) {
	js := historyJS(t)
	for _, study := range []string{"a", "b"} {
		for _, trial := range []string{"t1", "t2"} {
			for seq := int64(1); seq <= 5; seq++ {
				r := &bus.MetricsReport{AttemptRef: bus.AttemptRef{Study: study, Trial: trial, Attempt: 1}, Seq: seq, Step: seq * 10, Values: map[string]float64{"loss": 1 / float64(seq)}, Time: time.Now()}
				publishReport(t, js, r, r.MsgID())
				if seq == 3 {
					publishReport(t, js, r, r.MsgID())         // deduplicated by the server
					publishReport(t, js, r, r.MsgID()+"/late") // stored again; dropped on read
				}
			}
		}
	}
	read := func(study, trial string) map[string][]int64 {
		t.Helper()
		got := map[string][]int64{}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := bus.History(ctx, js, study, trial, func(r *bus.MetricsReport) error {
			if r.Study != study {
				t.Errorf("read a report of study %s while reading %s", r.Study, study)
			}
			got[r.Trial] = append(got[r.Trial], r.Step)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	all := read("a", "")
	if len(all) != 2 || len(all["t1"]) != 5 || len(all["t2"]) != 5 {
		t.Fatalf("study a: %v, want 5 steps of each of 2 trials", all)
	}
	for i, s := range all["t1"] {
		if s != int64(10*(i+1)) {
			t.Errorf("t1 steps %v, want 10, 20, ..., 50 in order", all["t1"])
			break
		}
	}
	if one := read("a", "t2"); len(one) != 1 || len(one["t2"]) != 5 {
		t.Errorf("trial a/t2: %v", one)
	}
	if none := read("c", ""); len(none) != 0 {
		t.Errorf("a study without reports: %v", none)
	}
	if err := bus.PurgeHistory(t.Context(), js, "a"); err != nil {
		t.Fatal(err)
	}
	if gone := read("a", ""); len(gone) != 0 {
		t.Errorf("after purge: %v", gone)
	}
	if kept := read("b", ""); len(kept["t1"]) != 5 {
		t.Errorf("purging a removed b's history: %v", kept)
	}
}

// TestCurveRoundTrip: a chunk gives back exactly the reports it was built
// from, absent and non-finite values included.
func TestCurveRoundTrip(t *testing.T) {
	ref := bus.AttemptRef{Study: "s", Trial: "t", Attempt: 2}
	now := time.Now().UTC().Truncate(time.Microsecond)
	in := []*bus.MetricsReport{
		{AttemptRef: ref, Seq: 1, Step: 10, Time: now, Values: map[string]float64{"train": 3}},
		{AttemptRef: ref, Seq: 2, Step: 10, Time: now, Values: map[string]float64{"val": 2.5}},
		{AttemptRef: ref, Seq: 3, Step: 20, Values: map[string]float64{"train": 0}, NonFinite: map[string]string{"val": bus.NaN}},
	}
	b := bus.NewCurveBuilder(ref)
	for _, r := range in {
		if c := b.Add(r); c != nil {
			t.Fatalf("a chunk after %d reports", r.Seq)
		}
	}
	c := b.Finish()
	var back bus.Curve
	if err := bus.Decode(bus.Encode(c), &back); err != nil {
		t.Fatal(err)
	}
	out := back.Reports()
	if len(out) != 3 || !back.Last || back.MsgID() != "c/s/t/2/0" {
		t.Fatalf("chunk %+v", back)
	}
	for i, r := range out {
		want := in[i]
		if r.Seq != want.Seq || r.Step != want.Step || !r.Time.Equal(want.Time) || len(r.Values) != len(want.Values) || len(r.NonFinite) != len(want.NonFinite) {
			t.Errorf("report %d: %+v, want %+v", i, r, *want)
		}
		for k, v := range want.Values {
			if r.Values[k] != v {
				t.Errorf("report %d: %s = %v, want %v", i, k, r.Values[k], v)
			}
		}
	}
	if out[2].NonFinite["val"] != bus.NaN {
		t.Errorf("non-finite lost: %+v", out[2])
	}
	// A hostile chunk is refused on decode.
	bad := bus.Curve{AttemptRef: ref, Steps: []int64{1, 2}, Times: []int64{0}, Values: map[string][]float64{"x": {1}}}
	if err := bus.Decode(bus.Encode(&bad), &back); err == nil {
		t.Error("a chunk with columns of the wrong length was accepted")
	}
}

// TestHistoryChunksAndReports reads an attempt whose reports are all in
// chunks, one still running (its later reports not yet in a chunk), and
// one lost with its agent (reports only): each report once, in order.
func TestHistoryChunksAndReports(t *testing.T) {
	js := historyJS(t)
	pub := func(subject string, data []byte, id string) {
		t.Helper()
		if _, err := js.Publish(t.Context(), subject, data, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	write := func(trial string, attempt, reports, chunked int, last bool) {
		ref := bus.AttemptRef{Study: "s", Trial: trial, Attempt: attempt}
		b := bus.NewCurveBuilder(ref)
		var rs []*bus.MetricsReport
		for i := 1; i <= reports; i++ {
			r := &bus.MetricsReport{AttemptRef: ref, Seq: int64(i), Step: int64(i), Values: map[string]float64{"loss": float64(i)}}
			pub(bus.MetricsSubject("s", trial, "n1"), bus.Encode(r), r.MsgID())
			rs = append(rs, r)
		}
		for _, r := range rs[:chunked] {
			_ = b.Add(r)
		}
		var c *bus.Curve
		if last {
			c = b.Finish()
		} else {
			c = &bus.Curve{}
			*c = *b.Finish()
			c.Last = false
		}
		pub(bus.CurveSubject("s", trial, "n1"), bus.Encode(c), c.MsgID())
		pub(bus.CurveSubject("s", trial, "n1"), bus.Encode(c), c.MsgID()+"/again") // a repeat past the window
	}
	write("done", 1, 50, 50, true)
	write("running", 1, 30, 20, false) // 10 reports not yet chunked
	write("lost", 1, 7, 0, false)      // an empty, unfinished chunk
	got := map[string][]int64{}
	if err := bus.History(t.Context(), js, "s", "", func(r *bus.MetricsReport) error {
		got[r.Trial] = append(got[r.Trial], r.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for trial, n := range map[string]int{"done": 50, "running": 30, "lost": 7} {
		seqs := got[trial]
		if len(seqs) != n {
			t.Errorf("%s: %d reports, want %d: %v", trial, len(seqs), n, seqs)
			continue
		}
		for i, s := range seqs {
			if s != int64(i+1) {
				t.Errorf("%s: reports out of order or repeated: %v", trial, seqs)
				break
			}
		}
	}
}

// TestHistoryAcrossNodesAndLayouts reads a trial whose attempts ran on two
// nodes (one subject each) and a trial recorded before metrics and curve
// subjects named their node, whole and one trial at a time; a trial whose ID
// begins another's reads only its own.
func TestHistoryAcrossNodesAndLayouts(t *testing.T) {
	js := historyJS(t)
	pub := func(subject string, r *bus.MetricsReport) {
		t.Helper()
		if _, err := js.Publish(t.Context(), subject, bus.Encode(r), jetstream.WithMsgID(r.MsgID())); err != nil {
			t.Fatal(err)
		}
	}
	report := func(trial string, attempt, seq int) *bus.MetricsReport {
		return &bus.MetricsReport{AttemptRef: bus.AttemptRef{Study: "s", Trial: trial, Attempt: attempt}, Seq: int64(seq), Step: int64(seq), Values: map[string]float64{"loss": 1}}
	}
	for seq := 1; seq <= 3; seq++ {
		pub(bus.MetricsSubject("s", "moved", "n1"), report("moved", 1, seq))
		pub(bus.MetricsSubject("s", "moved", "n2"), report("moved", 2, seq))
		pub(bus.SubjectMetrics+".s.old", report("old", 1, seq))
		pub(bus.MetricsSubject("s", "mov", "n1"), report("mov", 1, seq))
	}
	// Attempts whose reports are in chunks too, in either layout.
	chunk := func(subject, reports string, trial string, attempt int) {
		t.Helper()
		b := bus.NewCurveBuilder(bus.AttemptRef{Study: "s", Trial: trial, Attempt: attempt})
		for seq := 1; seq <= 3; seq++ {
			pub(reports, report(trial, attempt, seq))
			_ = b.Add(report(trial, attempt, seq))
		}
		c := b.Finish()
		if _, err := js.Publish(t.Context(), subject, bus.Encode(c), jetstream.WithMsgID(c.MsgID())); err != nil {
			t.Fatal(err)
		}
	}
	chunk(bus.SubjectCurves+".s.old", bus.SubjectMetrics+".s.old", "old", 2)
	chunk(bus.CurveSubject("s", "moved", "n3"), bus.MetricsSubject("s", "moved", "n3"), "moved", 3)
	read := func(trial string) map[string]int {
		t.Helper()
		got := map[string]int{}
		if err := bus.History(t.Context(), js, "s", trial, func(r *bus.MetricsReport) error {
			got[fmt.Sprintf("%s#%d", r.Trial, r.Attempt)]++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for trial, want := range map[string]string{
		"":      "map[mov#1:3 moved#1:3 moved#2:3 moved#3:3 old#1:3 old#2:3]",
		"moved": "map[moved#1:3 moved#2:3 moved#3:3]",
		"mov":   "map[mov#1:3]",
		"old":   "map[old#1:3 old#2:3]",
	} {
		if got := fmt.Sprint(read(trial)); got != want {
			t.Errorf("History(s, %q) = %s, want %s", trial, got, want)
		}
	}
	// The chunks are read as chunks (raw), in both layouts.
	for trial, want := range map[string]string{"": "map[moved#3:1 old#2:1]", "moved": "map[moved#3:1]", "old": "map[old#2:1]"} {
		got := map[string]int{}
		if err := bus.HistoryChunks(t.Context(), js, "s", trial, func(c *bus.Curve, raw []byte) error {
			if raw != nil {
				got[fmt.Sprintf("%s#%d", c.Trial, c.Attempt)]++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != want {
			t.Errorf("HistoryChunks(s, %q) read the chunks %v, want %s", trial, got, want)
		}
	}
}
