package nn

import "math"

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter, 2019):
// each step, w ← w − lr·(m̂/(√v̂+ε) + λ·w) for tensors with Decay set.
type AdamW struct {
	// Beta1 and Beta2 are the moments' decay rates, Eps the denominator's
	// floor.
	Beta1, Beta2, Eps float64
	// WeightDecay is λ, applied to tensors with Decay set.
	WeightDecay float64
	t           int
}

// NewAdamW returns AdamW with β = (0.9, 0.999), ε = 1e-8 and the given
// weight decay λ.
func NewAdamW(weightDecay float64) *AdamW {
	return &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
}

// Step applies one update with learning rate lr to every tensor from its G.
func (o *AdamW) Step(ts []*Tensor, lr float64) {
	o.t++
	c1 := 1 - math.Pow(o.Beta1, float64(o.t))
	c2 := 1 - math.Pow(o.Beta2, float64(o.t))
	b1, b2 := o.Beta1, o.Beta2
	step := lr / c1
	isc2 := 1 / math.Sqrt(c2)
	for _, t := range ts {
		shrink := 1.0
		if t.Decay {
			shrink = 1 - lr*o.WeightDecay
		}
		for i, g := range t.G {
			m := b1*t.m[i] + (1-b1)*g
			v := b2*t.v[i] + (1-b2)*g*g
			t.m[i], t.v[i] = m, v
			t.W[i] = t.W[i]*shrink - step*m/(math.Sqrt(v)*isc2+o.Eps)
		}
	}
}

// ConstantLR is the learning rate at step (from 0): a linear warm-up over
// warmup steps, then base. It does not depend on the run's length, so a
// longer run's first steps are a shorter one's.
func ConstantLR(base float64, step, warmup int) float64 {
	if step < warmup {
		return base * float64(step+1) / float64(warmup)
	}
	return base
}

// CosineLR is the learning rate at step (from 0) of total steps: a linear
// warm-up over the first warmup steps to base, then a cosine decay to a
// tenth of base at the last step.
func CosineLR(base float64, step, total, warmup int) float64 {
	if step < warmup {
		return base * float64(step+1) / float64(warmup)
	}
	if total <= warmup+1 {
		return base
	}
	p := float64(step-warmup) / float64(total-warmup-1)
	return base * (0.1 + 0.45*(1+math.Cos(math.Pi*p)))
}
