package command

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// fixture is a small study's results with every kind of trial: succeeded,
// failed, cancelled and still running.
func fixture() *api.ResultsReply {
	obj := func(v float64) *float64 { return &v }
	t0 := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	res := func(v float64) *api.Result {
		return &api.Result{Attempt: 1, Node: "a1", Objective: obj(v), Metrics: map[string]float64{"val_loss": v, "params": 1e6}, Recorded: t0}
	}
	return &api.ResultsReply{
		Study: "demo", Objective: "val_loss", Direction: "minimize", Total: 5,
		Trials: []api.Trial{
			{ID: "aaaaaaaaaaaaaaaaaaaa", Index: 0, State: sweep.Succeeded, Attempt: 1, Seed: 0, Params: map[string]any{"params": 1e6, "lr": 0.001, "recipe": "base"}, Result: res(3.25)},
			{ID: "bbbbbbbbbbbbbbbbbbbb", Index: 1, State: sweep.Succeeded, Attempt: 2, Seed: 0, Params: map[string]any{"params": 1e7, "lr": 0.001, "recipe": "base"}, Result: res(2.5)},
			{ID: "cccccccccccccccccccc", Index: 2, State: sweep.Failed, Attempt: 3, Seed: 0, Params: map[string]any{"params": 1e8, "lr": 0.001, "recipe": "base"}, Error: "failed 3 times; last error: plugin crashed: exit status 3"},
			{ID: "dddddddddddddddddddd", Index: 3, State: sweep.Cancelled, Attempt: 0, Seed: 1, Params: map[string]any{"params": 1e6, "lr": 0.001, "recipe": "base"}, Error: "cancelled by the user"},
			{ID: "eeeeeeeeeeeeeeeeeeee", Index: 4, State: sweep.Running, Attempt: 1, Seed: 1, Params: map[string]any{"params": 1e7, "lr": 0.001, "recipe": "base"}},
		},
	}
}

func goldenFile(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "render", name)
	if updating() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestResultsOutputGolden(t *testing.T) {
	for _, tc := range []struct {
		format string
		limit  int
		golden string
	}{
		{"table", 0, "results.txt"},
		{"table", 2, "results_limited.txt"},
		{"csv", 0, "results.csv"},
		{"json", 0, "results.json"},
		{"jsonl", 0, "results.jsonl"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeResults(&buf, fixture(), tc.format, tc.limit); err != nil {
				t.Fatal(err)
			}
			goldenFile(t, tc.golden, buf.Bytes())
		})
	}
}

// TestResultsJSONLinesAreTheRecords: each line of --format jsonl decodes
// to one trial record, all of them, in order, with nothing left out.
func TestResultsJSONLinesAreTheRecords(t *testing.T) {
	r := fixture()
	r.Trials[0].Result = &api.Result{Attempt: 1, Metrics: map[string]float64{"val_loss": 1.5}, NonFinite: map[string]string{"grad_norm": "NaN"}}
	var buf bytes.Buffer
	if err := writeResults(&buf, r, "jsonl", 0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(r.Trials) {
		t.Fatalf("%d lines for %d trials", len(lines), len(r.Trials))
	}
	for i, line := range lines {
		var got api.Trial
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if got.ID != r.Trials[i].ID || got.State != r.Trials[i].State {
			t.Errorf("line %d is trial %s (%s), want %s (%s)", i+1, got.ID, got.State, r.Trials[i].ID, r.Trials[i].State)
		}
	}
	var first api.Trial
	_ = json.Unmarshal([]byte(lines[0]), &first)
	if first.Result == nil || first.Result.NonFinite["grad_norm"] != "NaN" {
		t.Errorf("the first record lost its non-finite metric: %+v", first.Result)
	}
}

func TestStatusOutputGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	dead := t0.Add(-time.Minute)
	best := fixture().Trials[1]
	r := &api.StatusReply{
		Leader: "coord-a", Since: t0.Add(-time.Hour),
		Studies: []api.StudyStatus{{
			Name: "demo", State: api.StudyActive, Method: "charlm", Objective: "val_loss", Direction: "minimize",
			Total: 5, Counts: map[string]int{"succeeded": 2, "failed": 1, "cancelled": 1, "running": 1},
			StaleAttempts: 2, LateResults: 1, Retries: 3, Rate: 0.5, ETA: api.Duration(2 * time.Second),
			Best: &best, Failures: []api.Trial{fixture().Trials[2]},
			Team: "vision",
			Submissions: []api.Submission{
				{Time: t0.Add(-50 * time.Minute), Added: 4, Total: 4, By: "submitter-vision"},
				{Time: t0.Add(-40 * time.Minute), Added: 1, Total: 5}, // the coordinator's own
			},
			Cancellations: []api.Cancellation{{Time: t0.Add(-30 * time.Minute), By: "operator", Trials: 1, Reason: "wrong data"}},
			Quota:         "1 trials wait: team vision is at its quota of 4 running trials",
		}},
		Nodes: []api.NodeStatus{
			{Node: api.Node{ID: "gpu-01", State: api.NodeAlive, CPU: 8, Memory: 64 << 30, GPUs: make([]api.GPU, 8), LastSeen: t0}, Running: 1, Waiting: 2, FreeCPU: 7, FreeMemory: 60 << 30},
			{Node: api.Node{ID: "gpu-02", State: api.NodeDead, CPU: 8, Memory: 64 << 30, LastSeen: dead, DeadSince: &dead}, FreeCPU: 8, FreeMemory: 64 << 30},
			// Back from a partition: its dispatch went unanswered, and it
			// still runs two attempts that ran elsewhere meanwhile.
			{Node: api.Node{ID: "gpu-03", State: api.NodeAlive, CPU: 8, Memory: 64 << 30, LastSeen: t0}, FreeCPU: 6, FreeMemory: 62 << 30, Held: true, Superseded: 2},
		},
	}
	var buf bytes.Buffer
	printStatus(&buf, r, true, t0)
	goldenFile(t, "status.txt", buf.Bytes())
	if got, want := progressLine(&r.Studies[0]), "demo [###################-----] 4/5 done · 1 running · 1 failed · 1 cancelled · 2 stale · 0.5 trials/s · ETA 2s · best val_loss 2.5"; got != want {
		t.Errorf("progressLine =\n%q\nwant\n%q", got, want)
	}
}

// TestPausedShown: a paused trial shows as paused in the results table
// and the progress line counts it, while its record stays succeeded.
func TestPausedShown(t *testing.T) {
	r := fixture()
	r.Trials[0].Paused = true
	var buf bytes.Buffer
	if err := writeResults(&buf, r, "table", 0); err != nil {
		t.Fatal(err)
	}
	var row string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, r.Trials[0].ID) {
			row = line
		}
	}
	if !strings.Contains(row, " paused ") || strings.Contains(row, "succeeded") {
		t.Errorf("the paused trial's row is %q, want it shown as paused", row)
	}
	if strings.Count(buf.String(), " paused ") != 1 {
		t.Errorf("want one paused row:\n%s", buf.String())
	}
	s := api.StudyStatus{Name: "demo", Total: 5, Counts: map[string]int{"succeeded": 2, "running": 1}, Paused: 1}
	if got := progressLine(&s); !strings.Contains(got, " · 1 paused") || !strings.Contains(got, "2/5 done") {
		t.Errorf("progressLine = %q, want 2/5 done with 1 paused", got)
	}
}
