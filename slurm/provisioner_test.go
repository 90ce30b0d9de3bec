package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/resource"
)

// fakeSLURM is a controller whose squeue can fail or lag behind sbatch.
type fakeSLURM struct {
	mu        sync.Mutex
	jobs      []Job
	next      int
	jobsErr   error
	hideNew   bool // squeue does not list submitted jobs yet
	submitted []string
	cancelled []string
}

func (f *fakeSLURM) Submit(_ context.Context, script string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.Contains(script, "#SBATCH --job-name=asymptote-gpu") {
		return "", fmt.Errorf("unexpected script:\n%s", script)
	}
	f.next++
	id := fmt.Sprint(100 + f.next)
	f.submitted = append(f.submitted, id)
	if !f.hideNew {
		f.jobs = append(f.jobs, Job{ID: id, State: JobPending, SLURMState: "PENDING", Reason: "Resources", Submitted: time.Now()})
	}
	return id, nil
}

func (f *fakeSLURM) Jobs(context.Context, string) ([]Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jobsErr != nil {
		return nil, f.jobsErr
	}
	return append([]Job(nil), f.jobs...), nil
}

func (f *fakeSLURM) Cancel(_ context.Context, ids ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, ids...)
	for _, id := range ids {
		for i := range f.jobs {
			if f.jobs[i].ID == id {
				f.jobs[i].State, f.jobs[i].SLURMState = JobEnding, "CANCELLED"
			}
		}
	}
	return nil
}

// start marks job id running.
func (f *fakeSLURM) start(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.jobs {
		if f.jobs[i].ID == id {
			f.jobs[i].State, f.jobs[i].SLURMState, f.jobs[i].Started = JobRunning, "RUNNING", time.Now()
		}
	}
}

// cluster is the status the fake leader answers.
type cluster struct {
	mu      sync.Mutex
	pending int
	nodes   []api.NodeStatus
	err     error
}

func (c *cluster) status(context.Context) (*api.StatusReply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	return &api.StatusReply{
		Studies: []api.StudyStatus{{Name: "s", Counts: map[string]int{"pending": c.pending}}},
		Nodes:   append([]api.NodeStatus(nil), c.nodes...),
	}, nil
}

func newTestProvisioner(t *testing.T, f *fakeSLURM, c *cluster) *Provisioner {
	t.Helper()
	p, err := New(Config{Queue: testQueue(), Agent: Agent{Binary: "/bin/asymptote", NATSURL: "nats://x:4222"}, SLURM: f, Status: c.status, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRoundWithoutReadings checks that a round that cannot read the
// leader's status or SLURM's jobs submits nothing, and says why.
func TestRoundWithoutReadings(t *testing.T) {
	for _, tt := range []struct {
		name  string
		slurm *fakeSLURM
		c     *cluster
		want  string
	}{
		{"slurmctld down", &fakeSLURM{jobsErr: errors.New("squeue: slurm_load_jobs error: Unable to contact slurm controller")}, &cluster{pending: 10}, "Unable to contact"},
		{"no leader", &fakeSLURM{}, &cluster{pending: 10, err: errors.New("no leader answered")}, "cluster status: no leader answered"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProvisioner(t, tt.slurm, tt.c)
			if _, err := p.Round(t.Context()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Round: %v, want an error with %q", err, tt.want)
			}
			if len(tt.slurm.submitted) != 0 {
				t.Errorf("submitted %v without knowing what SLURM holds", tt.slurm.submitted)
			}
			if r := p.Last(); !strings.Contains(r.Error, tt.want) {
				t.Errorf("report error %q, want %q", r.Error, tt.want)
			}
		})
	}
}

// TestLaggingSqueue checks that jobs sbatch accepted count while squeue
// does not list them yet, so a second round does not ask again.
func TestLaggingSqueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := &fakeSLURM{hideNew: true}, &cluster{pending: 8}
		p := newTestProvisioner(t, f, c)
		for range 3 {
			if _, err := p.Round(t.Context()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
		}
		if len(f.submitted) != 2 {
			t.Errorf("submitted %v over 3 rounds of a lagging squeue, want 2 (8 trials, 4 slots each)", f.submitted)
		}
	})
}

// TestLifecycle follows allocations from waiting work to release: they
// are submitted, start, their agents join and work, the work runs out,
// and after idle_release they are cancelled.
func TestLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := &fakeSLURM{}, &cluster{pending: 6}
		p := newTestProvisioner(t, f, c)
		round := func() Decision {
			t.Helper()
			d, err := p.Round(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			return d
		}
		if d := round(); d.Submit != 2 {
			t.Fatalf("first round submits %d, want 2", d.Submit)
		}
		if d := round(); d.Submit != 0 || !strings.Contains(d.Why, "2 allocations pending") {
			t.Fatalf("second round: %+v, want no new ask and the pending allocations as the reason", d)
		}
		f.start("101")
		f.start("102")
		c.mu.Lock()
		c.pending = 0
		c.nodes = []api.NodeStatus{
			{Node: api.Node{ID: NodePrefix(testQueue(), "101") + "0", State: api.NodeAlive}, Running: 2},
			{Node: api.Node{ID: NodePrefix(testQueue(), "101") + "1", State: api.NodeAlive}, Running: 2},
			{Node: api.Node{ID: NodePrefix(testQueue(), "102") + "0", State: api.NodeAlive}, Running: 1},
			{Node: api.Node{ID: NodePrefix(testQueue(), "102") + "1", State: api.NodeAlive}},
			{Node: api.Node{ID: "someone-else", State: api.NodeAlive}, Running: 5},
		}
		c.mu.Unlock()
		round()
		r := p.Last()
		if len(r.Allocations) != 2 || r.Allocations[0].Agents != 2 || r.Allocations[0].Busy != 4 || r.Allocations[1].Busy != 1 {
			t.Fatalf("allocations %+v, want 101 with 2 agents and 4 trials, 102 with 1 trial", r.Allocations)
		}
		// The work runs out: both idle from now; idle_release is 2m.
		c.mu.Lock()
		for i := range c.nodes {
			c.nodes[i].Running = 0
		}
		c.mu.Unlock()
		for range 60 {
			round()
		}
		if len(f.cancelled) != 0 {
			t.Fatalf("cancelled %v after a minute idle, want none before idle_release (2m)", f.cancelled)
		}
		for range 65 {
			round()
		}
		if len(f.cancelled) != 2 {
			t.Errorf("cancelled %v after over 2m idle, want both", f.cancelled)
		}
		if len(f.submitted) != 2 {
			t.Errorf("submitted %v in all, want 2", f.submitted)
		}
	})
}

// TestSlowController checks that a squeue that does not answer is cut off
// at the timeout with an error that says so.
func TestSlowController(t *testing.T) {
	slow := filepath.Join(t.TempDir(), "squeue")
	if err := os.WriteFile(slow, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Commands{Squeue: slow, Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := c.Jobs(t.Context(), "asymptote-gpu")
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Errorf("Jobs: %v, want a timeout naming 200ms", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Jobs returned after %s; the timeout did not cut squeue off", took)
	}
}

// TestWaitingCountsWhatTheQueueHolds: trials a queue's agents could never
// run (a GPU study on a CPU queue, a trial larger than an agent) do not
// make it ask for allocations.
func TestWaitingCountsWhatTheQueueHolds(t *testing.T) {
	cpuQueue := Queue{CPUs: 4, Memory: 8 << 30}
	gpuQueue := Queue{CPUs: 8, Memory: 64 << 30, GPUs: 2}
	study := func(n int, needs *resource.Resources) api.StudyStatus {
		return api.StudyStatus{Counts: map[string]int{"pending": n, "running": 3}, Needs: needs}
	}
	st := &api.StatusReply{Studies: []api.StudyStatus{
		study(5, &resource.Resources{CPU: 1, Memory: 1 << 30}),
		study(7, &resource.Resources{CPU: 2, Memory: 4 << 30, GPUCount: 1}),
		study(11, &resource.Resources{CPU: 16, Memory: 1 << 30}),
		study(2, nil), // a coordinator that does not say: counted
	}}
	for _, tc := range []struct {
		name string
		q    Queue
		want int
	}{
		{"cpu queue", cpuQueue, 5 + 2},
		{"gpu queue", gpuQueue, 5 + 7 + 2},
	} {
		if got := waiting(st, tc.q); got != tc.want {
			t.Errorf("%s: %d waiting, want %d", tc.name, got, tc.want)
		}
	}
}
