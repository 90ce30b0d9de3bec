// Package resource holds what a host offers and a trial needs, and the one
// rule for whether a trial fits: the leader places trials with it and the
// agent admits dispatches with it, so the two cannot disagree and leave
// an attempt refused and stale. It imports only the standard library, so
// the spec model, the wire messages and the stored records can all share
// its types.
package resource

// Resources are what a host offers or a trial asks for. Its JSON form is
// the one the bus carries in heartbeats and dispatches.
type Resources struct {
	// CPU is in cores; fractions let many light trials share a core.
	CPU float64 `json:"cpu"`
	// Memory is in bytes.
	Memory int64 `json:"memory"`
	// GPUs lists the host's GPUs (on a node) or is empty (on a trial,
	// which asks for GPUCount).
	GPUs []GPU `json:"gpus,omitempty"`
	// GPUCount is how many GPUs a trial needs.
	GPUCount int `json:"gpu_count,omitempty"`
}

// GPU describes one accelerator of a host.
type GPU struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid,omitempty"`
	Model     string `json:"model,omitempty"`
	MemoryMiB int64  `json:"memory_mib,omitempty"`
}

// cpuSlack absorbs the rounding of fractional CPU sums, so that ten
// trials of 0.1 cores fit one core.
const cpuSlack = 1e-9

// Fits reports whether a trial with needs fits a host with capacity of
// which used is taken. The needs must fit the whole capacity, were it
// idle, and used plus needs must fit the capacity's CPU and memory
// scaled by scale: 1 for what is free now, 1 plus an agent's queue factor
// for what may also wait in its queue. GPUs count by number: capacity's
// GPUs less used.GPUCount must cover needs.GPUCount; GPUs are not scaled,
// as the leader assigns each trial its own.
func Fits(needs, capacity, used Resources, scale float64) bool {
	if needs.CPU > capacity.CPU+cpuSlack || needs.Memory > capacity.Memory {
		return false
	}
	if used.CPU+needs.CPU > capacity.CPU*scale+cpuSlack {
		return false
	}
	mem := used.Memory + needs.Memory
	if scale == 1 {
		// Exact, in integers, for what is free now.
		if mem > capacity.Memory {
			return false
		}
	} else if float64(mem) > float64(capacity.Memory)*scale {
		return false
	}
	return needs.GPUCount <= len(capacity.GPUs)-used.GPUCount
}
