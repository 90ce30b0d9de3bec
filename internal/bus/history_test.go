package bus_test

import (
	"context"
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
	if _, err := js.Publish(t.Context(), bus.MetricsSubject(r.Study, r.Trial), bus.Encode(r), jetstream.WithMsgID(id)); err != nil {
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
