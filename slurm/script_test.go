package slurm

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden batch scripts under testdata")

// TestScript compares the batch scripts of two queues with their golden
// files: one with every option, one with only what is required.
func TestScript(t *testing.T) {
	tests := []struct {
		name  string
		queue Queue
		agent Agent
	}{
		{name: "full", queue: testQueue(), agent: Agent{
			Binary: "/opt/asymptote/bin/asymptote", NATSURL: "nats://login-1:4222", Output: "/scratch/asymptote/%j.out",
			Env: map[string]string{"ASYMPTOTE_ALLOW_PROGRAM": "/usr/bin/python3", "ASYMPTOTE_PLUGIN_DIR": "/opt/it's methods"},
		}},
		{name: "minimal", queue: Queue{Name: "cpu", TimeLimit: 90 * time.Second, CPUs: 2, Memory: 3<<30 + 1, AgentsPerAllocation: 1, TrialsPerAgent: 1, MaxAllocations: 1, IdleRelease: time.Minute, StartTimeout: time.Minute},
			agent: Agent{Binary: "/usr/local/bin/asymptote", NATSURL: "nats://10.0.0.1:4222"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.queue.Validate(); err != nil {
				t.Fatal(err)
			}
			got := Script(tt.queue, tt.agent)
			path := filepath.Join("testdata", tt.name+".sbatch")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("script differs from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

// TestParseSqueue reads squeue's lines into jobs, folding SLURM's states.
func TestParseSqueue(t *testing.T) {
	out := "12|PENDING|Resources|2026-12-07T01:16:50|2026-12-07T02:00:00\n" +
		"13|RUNNING|None|2026-12-07T01:16:50|2026-12-07T01:16:51\n" +
		"14|COMPLETING|None|2026-12-07T01:10:00|2026-12-07T01:10:01\n" +
		"15|TIMEOUT|TimeLimit|2026-12-07T01:00:00|2026-12-07T01:00:01\n" +
		"16|CONFIGURING|None|2026-12-07T01:16:50|2026-12-07T01:16:55\n" +
		"17|REQUEUED|BeginTime|2026-12-07T01:16:50|N/A\n\n"
	jobs, err := parseSqueue(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id      string
		state   JobState
		started bool
	}{{"12", JobPending, false}, {"13", JobRunning, true}, {"14", JobEnding, true}, {"15", JobEnding, true}, {"16", JobRunning, true}, {"17", JobPending, false}}
	if len(jobs) != len(want) {
		t.Fatalf("%d jobs, want %d: %+v", len(jobs), len(want), jobs)
	}
	for i, w := range want {
		j := jobs[i]
		if j.ID != w.id || j.State != w.state || j.Started.IsZero() == w.started || j.Submitted.IsZero() {
			t.Errorf("job %d: %+v, want ID %s state %s started %v, with its submit time", i, j, w.id, w.state, w.started)
		}
	}
	if jobs[0].Reason != "Resources" {
		t.Errorf("pending job's reason %q, want Resources", jobs[0].Reason)
	}
	if _, err := parseSqueue("12|PENDING\n"); err == nil {
		t.Error("a short line parsed; want an error naming the format")
	}
}

// TestDocumentedScript checks that docs/slurm.md's worked example shows
// the script its flags really give.
func TestDocumentedScript(t *testing.T) {
	q := Queue{Name: "gpu", Partition: "gpu", Account: "ml-lab", QoS: "normal", TimeLimit: 12 * time.Hour, CPUs: 32, Memory: 256 << 30, GPUs: 4,
		AgentsPerAllocation: 1, TrialsPerAgent: 4, MaxAllocations: 8, IdleRelease: 10 * time.Minute, StartTimeout: 10 * time.Minute, SignalBefore: 2 * time.Minute}
	got := Script(q, Agent{Binary: "/shared/bin/asymptote", NATSURL: "nats://login-1:4222", Output: "/scratch/alice/asymptote/%j.out",
		Env: map[string]string{"ASYMPTOTE_ALLOW_PROGRAM": "/usr/bin/python3"}})
	doc, err := os.ReadFile(filepath.Join("..", "docs", "slurm.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), got) {
		t.Errorf("docs/slurm.md's worked example lacks the script its flags give:\n%s", got)
	}
}
