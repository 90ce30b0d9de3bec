package command

import (
	"context"
	"fmt"

	"asymptote.dev/asymptote/agent/fingerprint"
	"asymptote.dev/asymptote/internal/bus"
)

// fingerprintHost reports what this host offers: its CPUs and memory
// (within any cgroup limits) and its GPUs as nvidia-smi lists them. A
// failing nvidia-smi is reported but does not stop the agent from offering
// its CPUs.
func fingerprintHost(ctx context.Context) (bus.Resources, error) {
	h, err := fingerprint.Host(ctx)
	if h.CPU == 0 {
		return bus.Resources{}, fmt.Errorf("fingerprint host: %w", err)
	}
	r := bus.Resources{CPU: h.CPU, Memory: h.Memory}
	for _, g := range h.GPUs {
		r.GPUs = append(r.GPUs, bus.GPU(g))
	}
	return r, nil
}
