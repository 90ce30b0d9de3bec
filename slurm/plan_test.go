package slurm

import (
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func testQueue() Queue {
	return Queue{
		Name: "gpu", Partition: "gpu", TimeLimit: time.Hour, CPUs: 4, Memory: 16 << 30, GPUs: 1,
		AgentsPerAllocation: 2, TrialsPerAgent: 2, MaxAllocations: 3,
		IdleRelease: 2 * time.Minute, StartTimeout: 5 * time.Minute, SignalBefore: 90 * time.Second,
	}
}

func running(id string, agents, busy int, idleFor time.Duration) Allocation {
	a := Allocation{JobID: id, State: JobRunning, Submitted: t0.Add(-time.Hour), Started: t0.Add(-50 * time.Minute), Agents: agents, Busy: busy}
	if idleFor > 0 {
		a.IdleSince = t0.Add(-idleFor)
	}
	return a
}

func pending(id, reason string) Allocation {
	return Allocation{JobID: id, State: JobPending, Reason: reason, Submitted: t0.Add(-time.Minute)}
}

// TestPlan checks the decisions for each situation; the queue's
// allocations hold 4 trials each (2 agents of 2) and at most 3 are held.
func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		waiting int
		allocs  []Allocation
		submit  int
		release []string
		why     string
	}{
		{name: "nothing waits, nothing held"},
		{name: "work waits: enough allocations for it", waiting: 7, submit: 2},
		{name: "exactly one allocation's worth", waiting: 4, submit: 1},
		{name: "more than the cap", waiting: 50, submit: 3, why: "0 allocations held, at max_allocations"},
		{name: "pending allocations count: no second ask", waiting: 4,
			allocs: []Allocation{pending("10", "Resources")}, why: "1 allocation pending in partition gpu: Resources (1)"},
		{name: "pending count, the rest is asked for", waiting: 9,
			allocs: []Allocation{pending("10", "Resources"), pending("11", "Priority")}, submit: 1,
			why: "2 allocations pending in partition gpu: Priority (1), Resources (1)"},
		{name: "free slots on running agents take the work", waiting: 3,
			allocs: []Allocation{running("10", 2, 1, 0)}},
		{name: "busy beyond free slots asks for more", waiting: 3,
			allocs: []Allocation{running("10", 2, 3, 0)}, submit: 1},
		{name: "a running allocation whose agents have not joined yet counts", waiting: 4,
			allocs: []Allocation{{JobID: "10", State: JobRunning, Started: t0.Add(-time.Minute)}}},
		{name: "agents that never joined: released, replaced", waiting: 4,
			allocs: []Allocation{{JobID: "10", State: JobRunning, Started: t0.Add(-6 * time.Minute)}}, submit: 1,
			release: []string{"10"}},
		{name: "ending allocations count for nothing", waiting: 4,
			allocs: []Allocation{{JobID: "10", State: JobEnding, Agents: 2, Busy: 4}}, submit: 1},
		{name: "at the cap with ending ones not held", waiting: 20,
			allocs: []Allocation{running("10", 2, 4, 0), running("11", 2, 4, 0), {JobID: "12", State: JobEnding}}, submit: 1,
			why: "2 allocations held, at max_allocations"},
		{name: "idle long enough with nothing waiting: released",
			allocs:  []Allocation{running("10", 2, 0, 3*time.Minute), running("11", 2, 0, time.Minute), running("12", 2, 1, 0)},
			release: []string{"10"}},
		{name: "idle but work waits: kept", waiting: 1,
			allocs: []Allocation{running("10", 2, 0, 3*time.Minute)}},
		{name: "pending allocations no longer needed: withdrawn, newest first", waiting: 1,
			allocs:  []Allocation{running("10", 2, 3, 0), pending("11", "Resources"), pending("12", "Resources")},
			release: []string{"12", "11"}},
		{name: "a pending allocation still needed is kept", waiting: 2,
			allocs:  []Allocation{running("10", 2, 4, 0), pending("11", "Resources"), pending("12", "Resources")},
			release: []string{"12"}, why: "1 allocation pending in partition gpu: Resources (1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Plan(testQueue(), Inputs{Now: t0, Waiting: tt.waiting, Allocations: tt.allocs})
			var released []string
			for _, r := range d.Release {
				released = append(released, r.JobID)
				if r.Why == "" {
					t.Errorf("release of %s says no why", r.JobID)
				}
			}
			if d.Submit != tt.submit || !slices.Equal(released, tt.release) || d.Why != tt.why {
				t.Errorf("Plan: submit %d, release %v, why %q; want submit %d, release %v, why %q", d.Submit, released, d.Why, tt.submit, tt.release, tt.why)
			}
		})
	}
}

// TestPlanNeverOverAsks runs rounds in which SLURM starts nothing: however
// often it plans, the allocations held never exceed what the waiting work
// needs, nor the cap.
func TestPlanNeverOverAsks(t *testing.T) {
	q := testQueue()
	for _, waiting := range []int{1, 4, 5, 11, 12, 13, 100} {
		var held []Allocation
		for round := range 5 {
			d := Plan(q, Inputs{Now: t0.Add(time.Duration(round) * time.Second), Waiting: waiting, Allocations: held})
			for range d.Submit {
				held = append(held, pending(string(rune('a'+len(held))), "Resources"))
			}
		}
		want := min((waiting+q.Slots()-1)/q.Slots(), q.MaxAllocations)
		if len(held) != want {
			t.Errorf("%d waiting: %d allocations after 5 rounds, want %d", waiting, len(held), want)
		}
	}
}

func TestQueueValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Queue)
		field  string
	}{
		{name: "valid", change: func(*Queue) {}},
		{name: "name", change: func(q *Queue) { q.Name = "GPU queue" }, field: "name"},
		{name: "partition with a shell character", change: func(q *Queue) { q.Partition = "gpu;rm" }, field: "partition"},
		{name: "time limit", change: func(q *Queue) { q.TimeLimit = 30 * time.Second }, field: "time_limit"},
		{name: "cpus", change: func(q *Queue) { q.CPUs = 0 }, field: "cpus"},
		{name: "memory", change: func(q *Queue) { q.Memory = 100 }, field: "memory"},
		{name: "agents", change: func(q *Queue) { q.AgentsPerAllocation = 0 }, field: "agents_per_allocation"},
		{name: "trials", change: func(q *Queue) { q.TrialsPerAgent = 0 }, field: "trials_per_agent"},
		{name: "max", change: func(q *Queue) { q.MaxAllocations = 0 }, field: "max_allocations"},
		{name: "idle", change: func(q *Queue) { q.IdleRelease = 0 }, field: "idle_release"},
		{name: "signal past the limit", change: func(q *Queue) { q.SignalBefore = 2 * time.Hour }, field: "signal_before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := testQueue()
			tt.change(&q)
			err := q.Validate()
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tt.field != "" && (err == nil || !containsField(err.Error(), tt.field)):
				t.Errorf("Validate: %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

func containsField(msg, field string) bool {
	return strings.Contains(msg, ": "+field+": ")
}
