package sweep

// Budget bounds a study's compute. Once it is spent, no new attempt
// starts: the trials still waiting are cancelled with the reason, and
// adaptive searches stop adding trials.
type Budget struct {
	// FLOPs counts the "flops" metric of succeeded trials, as methods
	// account for their training.
	FLOPs float64
	// DeviceHours counts every attempt's run time (failed and lost ones
	// too) times the GPUs it held, or its CPU cores when it held none.
	DeviceHours float64
}

// Kind names the budget's unit.
func (b *Budget) Kind() string {
	if b.FLOPs > 0 {
		return "flops"
	}
	return "device_hours"
}

// Limit is the budget's size in its unit.
func (b *Budget) Limit() float64 { return max(b.FLOPs, b.DeviceHours) }

// budget decodes the optional budget section: exactly one of flops and
// device_hours, positive.
func (d *decoder) budget(n *node, s *Spec) {
	m, ok := d.mapping(n, "budget", "flops", "device_hours")
	if !ok {
		return
	}
	if len(m) != 1 {
		d.errorf(n.line, "budget", "give exactly one of flops and device_hours, as in budget: {flops: 1e18}")
		return
	}
	b := &Budget{}
	for k, v := range m {
		f, ok := d.number(v, "budget."+k)
		if !ok {
			return
		}
		if f <= 0 {
			d.errorf(v.line, "budget."+k, "budget %v must be positive", f)
			return
		}
		if k == "flops" {
			b.FLOPs = f
		} else {
			b.DeviceHours = f
		}
	}
	s.Budget = b
}
