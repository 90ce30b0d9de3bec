// Package slurm keeps a SLURM partition's allocations sized to the work
// that waits: `asymptote slurm` reads the cluster's status over the bus,
// submits allocations with sbatch whose job runs `asymptote agent`, and
// releases idle ones with scancel. It is a process of its own that only
// submits: etcd and the leader never hear of SLURM, and a SLURM controller
// that is slow or down delays allocations, never scheduling.
//
// The decisions are a pure function (Plan) of what waits and what SLURM
// holds; the process around it (Provisioner) only gathers the inputs and
// carries the decisions out.
package slurm

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/resource"
)

// Queue is how one SLURM queue's allocations are asked for and sized.
type Queue struct {
	// Name names the queue in job names (asymptote-NAME) and node IDs.
	Name string `json:"name"`
	// Partition, Account and QoS are sbatch's --partition, --account and
	// --qos; empty ones are left to SLURM's defaults.
	Partition string `json:"partition,omitempty"`
	Account   string `json:"account,omitempty"`
	QoS       string `json:"qos,omitempty"`
	// TimeLimit is each allocation's --time.
	TimeLimit time.Duration `json:"time_limit"`
	// CPUs, Memory (bytes) and GPUs are what each agent of an allocation
	// gets (--cpus-per-task, --mem, --gres=gpu:N) and offers to trials.
	CPUs   int   `json:"cpus"`
	Memory int64 `json:"memory"`
	GPUs   int   `json:"gpus,omitempty"`
	// AgentsPerAllocation is the number of nodes of an allocation, one
	// agent on each (--nodes, --ntasks-per-node=1).
	AgentsPerAllocation int `json:"agents_per_allocation"`
	// TrialsPerAgent is how many trials one agent runs at once, which
	// sizes the allocations: the queue's estimate (its CPUs, memory or
	// GPUs over one trial's). Trials whose needs no agent of the queue
	// offers (Holds) are not counted at all.
	TrialsPerAgent int `json:"trials_per_agent"`
	// MaxAllocations bounds the allocations held at once, pending ones
	// included.
	MaxAllocations int `json:"max_allocations"`
	// IdleRelease is how long an allocation's agents may run nothing,
	// with nothing waiting, before it is released.
	IdleRelease time.Duration `json:"idle_release"`
	// StartTimeout is how long a running allocation may go without its
	// agents joining before it is taken for broken and released.
	StartTimeout time.Duration `json:"start_timeout"`
	// SignalBefore is how long before the time limit SLURM sends the
	// agents SIGTERM (--signal=TERM@N), so they report their attempts
	// preempted before the limit kills them.
	SignalBefore time.Duration `json:"signal_before"`
}

var queueName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

// Slots is how many trials one allocation runs at once.
func (q Queue) Slots() int { return q.AgentsPerAllocation * q.TrialsPerAgent }

// Holds reports whether one of the queue's agents offers what a trial
// needs: a study of GPU trials waits in vain for a CPU queue's agents, so
// its trials must not make that queue ask for allocations.
func (q Queue) Holds(need resource.Resources) bool {
	return need.CPU <= float64(q.CPUs) && need.Memory <= q.Memory && need.GPUCount <= q.GPUs
}

// Validate checks the queue, naming the field and what it wants.
func (q Queue) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("queue %q: %s: %s", q.Name, field, fmt.Sprintf(format, args...)))
	}
	if !queueName.MatchString(q.Name) {
		bad("name", "want lower-case letters, digits and dashes, up to 31, such as gpu")
	}
	for _, f := range []struct{ name, v string }{{"partition", q.Partition}, {"account", q.Account}, {"qos", q.QoS}} {
		if strings.ContainsAny(f.v, " \t\n'\"\\$`;") {
			bad(f.name, "%q has a space or a shell character; want SLURM's name for it", f.v)
		}
	}
	if q.TimeLimit < time.Minute {
		bad("time_limit", "%s, want at least 1m (SLURM counts minutes)", q.TimeLimit)
	}
	if q.CPUs < 1 {
		bad("cpus", "%d, want at least 1 per agent", q.CPUs)
	}
	if q.Memory < 1<<20 {
		bad("memory", "%d bytes, want at least 1MiB per agent, such as 16GiB", q.Memory)
	}
	if q.GPUs < 0 {
		bad("gpus", "%d, want 0 or more per agent", q.GPUs)
	}
	if q.AgentsPerAllocation < 1 {
		bad("agents_per_allocation", "%d, want at least 1 (one agent per node)", q.AgentsPerAllocation)
	}
	if q.TrialsPerAgent < 1 {
		bad("trials_per_agent", "%d, want at least 1", q.TrialsPerAgent)
	}
	if q.MaxAllocations < 1 {
		bad("max_allocations", "%d, want at least 1", q.MaxAllocations)
	}
	if q.IdleRelease <= 0 {
		bad("idle_release", "%s, want a positive duration such as 2m", q.IdleRelease)
	}
	if q.StartTimeout <= 0 {
		bad("start_timeout", "%s, want a positive duration such as 5m", q.StartTimeout)
	}
	if q.SignalBefore < 0 || (q.TimeLimit >= time.Minute && q.SignalBefore >= q.TimeLimit) {
		bad("signal_before", "%s, want 0 or more and less than the time limit, such as 90s", q.SignalBefore)
	}
	return errors.Join(errs...)
}
