package strategy

import (
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// Usage is what a trial has consumed of its study's budget so far: the
// FLOPs its result reports, for a FLOPs budget; otherwise the device hours
// of its ended attempts (GPU hours, or core hours for a trial that needs no
// GPU). It is 0 without a budget.
func Usage(spec *sweep.Spec, t *api.Trial) float64 {
	b := spec.Budget
	if b == nil {
		return 0
	}
	if b.FLOPs > 0 {
		r := t.Result
		if r == nil {
			return 0
		}
		// A promotion that continued a lower trial's run spent only what
		// came after its checkpoint: the lower trial counts the rest.
		if f := t.From; f != nil && f.Resumed {
			return max(r.Metrics["flops"]-f.Checkpoint.Metrics["flops"], 0)
		}
		return r.Metrics["flops"]
	}
	units := float64(spec.Resources.GPU)
	if units == 0 {
		units = spec.Resources.CPU
	}
	h := 0.0
	for _, a := range t.Attempts {
		if a.Started != nil && a.Ended != nil {
			h += a.Ended.Sub(*a.Started).Hours() * units
		}
	}
	return h
}
