package command

import (
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/slurm"
)

// TestSlurmFlags checks that a bad queue is refused before anything
// connects, with an error naming the flag to fix.
func TestSlurmFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-cpus", "0"}, "-cpus: 0, want at least 1"},
		{[]string{"-time", "30s"}, "-time: 30s, want at least 1m"},
		{[]string{"-queue-name", "GPU queue"}, "-queue-name: want lower-case"},
		{[]string{"-memory", "lots"}, "-memory:"},
		{[]string{"-partition", "gpu;rm -rf"}, "-partition:"},
		{[]string{"-signal-before", "5h"}, "-signal-before:"},
		{[]string{"-agent-env", "PATH=/bin"}, "-agent-env \"PATH=/bin\": want ASYMPTOTE_NAME=VALUE"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runCLI(t, append([]string{"slurm", "-nats-url", "nats://127.0.0.1:1"}, tt.args...)...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tt.want)
			}
		})
	}
}

// TestPrintSLURM checks what status shows of a provisioner's report: the
// queue, why work waits, and each allocation's job ID, state, age, agents
// and trials.
func TestPrintSLURM(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	rep := slurm.Report{Queue: "gpu", Partition: "gpu", Waiting: 14, Why: "1 allocation pending in partition gpu: Resources (1)",
		Allocations: []slurm.Allocation{
			{JobID: "4711", State: slurm.JobRunning, Submitted: now.Add(-41 * time.Minute), Agents: 1, Busy: 4},
			{JobID: "4712", State: slurm.JobPending, Reason: "Resources", Submitted: now.Add(-130 * time.Second)},
		}}
	var b strings.Builder
	printSLURM(&b, []slurm.Report{rep}, now)
	for _, want := range []string{
		"SLURM queue gpu (partition gpu): 2 allocations, 14 trials waiting",
		"work waits: 1 allocation pending in partition gpu: Resources (1)",
		"job 4711       running                  age 41m0s    agents 1  trials 4",
		"job 4712       pending (Resources)      age 2m10s    agents 0  trials 0",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}
