package slurm

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// JobState is an allocation's state in SLURM, folded to what planning
// needs.
type JobState string

const (
	// JobPending waits in SLURM's queue: it counts as capacity to come,
	// so waiting work never asks twice.
	JobPending JobState = "pending"
	// JobRunning holds its nodes; its agents join the cluster.
	JobRunning JobState = "running"
	// JobEnding is on its way out (completing, cancelled, past its
	// limit): its agents are leaving and their attempts come back as
	// preempted, so it counts for nothing.
	JobEnding JobState = "ending"
)

// Allocation is one SLURM job of the queue, as squeue and the cluster's
// status show it.
type Allocation struct {
	JobID string   `json:"job_id"`
	State JobState `json:"state"`
	// Reason is why a pending job waits (squeue's %r: Resources,
	// Priority, QOSMaxJobsPerUserLimit, ...).
	Reason string `json:"reason,omitempty"`
	// Submitted and Started are when SLURM took and started the job
	// (Started is zero while it is pending).
	Submitted time.Time `json:"submitted"`
	Started   time.Time `json:"started"`
	// Agents counts its agents alive in the cluster; Busy the attempts
	// they run or hold queued.
	Agents int `json:"agents"`
	Busy   int `json:"busy"`
	// IdleSince is when its agents last ran nothing (zero while they run
	// something, or before they joined).
	IdleSince time.Time `json:"idle_since"`
}

// Inputs are what one planning round sees.
type Inputs struct {
	Now time.Time
	// Waiting counts the trials that wait for an agent (pending).
	Waiting int
	// Allocations are the queue's jobs in SLURM.
	Allocations []Allocation
}

// Decision is what to do this round.
type Decision struct {
	// Submit is how many allocations to submit.
	Submit int
	// Release are the jobs to cancel, with why.
	Release []Release
	// Why says why work waits, when it does ("" when nothing waits).
	Why string
}

// Release is one job to cancel.
type Release struct {
	JobID, Why string
}

// Plan decides, from what waits and what SLURM holds, how many
// allocations to submit and which to release:
//
//   - every allocation pending or running counts for its slots
//     (Queue.Slots), busy or not, so work that waits is asked for once;
//   - waiting work beyond the counted slots' free part asks for as many
//     allocations as hold it, up to MaxAllocations;
//   - with nothing waiting, a running allocation whose agents ran nothing
//     for IdleRelease is released, and pending allocations that are no
//     longer needed are withdrawn (the newest first);
//   - a running allocation whose agents never joined within StartTimeout
//     is released as broken, and counts for nothing.
func Plan(q Queue, in Inputs) Decision {
	var d Decision
	slots := q.Slots()
	counted, capacity, busy := 0, 0, 0
	var pending []Allocation
	for _, a := range in.Allocations {
		switch {
		case a.State == JobEnding:
			continue
		case a.State == JobRunning && a.Agents == 0 && in.Now.Sub(a.Started) >= q.StartTimeout:
			d.Release = append(d.Release, Release{a.JobID, fmt.Sprintf("its agents did not join within start_timeout (%s)", q.StartTimeout)})
			continue
		case a.State == JobRunning && in.Waiting == 0 && a.Agents > 0 && a.Busy == 0 && !a.IdleSince.IsZero() && in.Now.Sub(a.IdleSince) >= q.IdleRelease:
			d.Release = append(d.Release, Release{a.JobID, fmt.Sprintf("idle for %s with nothing waiting", in.Now.Sub(a.IdleSince).Round(time.Second))})
			continue
		case a.State == JobPending:
			pending = append(pending, a)
		}
		counted++
		capacity += slots
		busy += min(a.Busy, slots)
	}
	need := in.Waiting - (capacity - busy)
	if need > 0 {
		want := (need + slots - 1) / slots
		d.Submit = min(want, q.MaxAllocations-counted)
		if d.Submit < want {
			d.Why = fmt.Sprintf("%d allocations held, at max_allocations", counted)
		}
	}
	// Withdraw pending allocations that nothing needs any more, newest
	// first: they hold no agent yet, so nothing is lost.
	slices.SortFunc(pending, func(a, b Allocation) int { return cmp.Compare(jobNumber(b.JobID), jobNumber(a.JobID)) })
	for surplus := -need; len(pending) > 0 && surplus >= slots; surplus -= slots {
		d.Release = append(d.Release, Release{pending[0].JobID, "pending and no longer needed: nothing waits for it"})
		pending = pending[1:]
	}
	if in.Waiting > 0 && len(pending) > 0 && d.Why == "" {
		d.Why = pendingWhy(q, pending)
	}
	return d
}

// pendingWhy says which allocations work waits for, and SLURM's reasons.
func pendingWhy(q Queue, pending []Allocation) string {
	reasons := map[string]int{}
	for _, a := range pending {
		reasons[cmp.Or(a.Reason, "None")]++
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(reasons)) {
		parts = append(parts, fmt.Sprintf("%s (%d)", r, reasons[r]))
	}
	where := "the default partition"
	if q.Partition != "" {
		where = "partition " + q.Partition
	}
	noun := "allocations"
	if len(pending) == 1 {
		noun = "allocation"
	}
	return fmt.Sprintf("%d %s pending in %s: %s", len(pending), noun, where, strings.Join(parts, ", "))
}

// jobNumber orders job IDs as SLURM numbers them (array tasks aside).
func jobNumber(id string) int64 {
	n, _ := strconv.ParseInt(strings.SplitN(id, "_", 2)[0], 10, 64)
	return n
}
