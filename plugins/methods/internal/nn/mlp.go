package nn

import (
	"math"
	"math/rand/v2"
)

// Tensor is a trainable array with its gradient and AdamW's moments.
type Tensor struct {
	// W holds the values and G their gradient, of the same length.
	W, G []float64
	m, v []float64
	// Decay says whether AdamW's weight decay applies (weights and
	// embeddings yes, biases no).
	Decay bool
}

// NewTensor returns a zeroed tensor of n values.
func NewTensor(n int, decay bool) *Tensor {
	return &Tensor{W: make([]float64, n), G: make([]float64, n), m: make([]float64, n), v: make([]float64, n), Decay: decay}
}

// Normal fills the tensor with N(0, std²) draws from rng.
func (t *Tensor) Normal(rng *rand.Rand, std float64) {
	for i := range t.W {
		t.W[i] = rng.NormFloat64() * std
	}
}

// Dense is one fully connected layer, Z = X·W + B, with W stored row-major
// as In×Out.
type Dense struct {
	// In and Out are the layer's input and output sizes.
	In, Out int
	// W is the In×Out weight matrix and B the Out biases.
	W, B *Tensor
}

// MLP is a stack of dense layers: Sizes[0] inputs, ReLU hidden layers of
// Sizes[1:len-1] units each followed by inverted dropout, and a linear
// output layer of Sizes[len-1] logits.
type MLP struct {
	// Sizes lists the layer widths, inputs first and logits last.
	Sizes []int
	// Layers holds the len(Sizes)-1 dense layers.
	Layers []Dense
	// Dropout is the probability of zeroing a hidden unit in training.
	Dropout float64
	// Pool runs the matrix multiplies.
	Pool Pool

	batch int
	in    []float64   // the last Forward's input (not owned)
	act   [][]float64 // per hidden layer: ReLU output before dropout
	out   [][]float64 // per layer: its output (post-dropout for hidden, logits for the last)
	mask  [][]float64 // per hidden layer: dropout scale, 0 or 1/(1-p)
	dcur  []float64   // gradient scratch
	dprev []float64
}

// NewMLP returns an MLP with He-initialised weights (std √(2/fan_in) for
// ReLU layers, √(1/fan_in) for the output layer) and zero biases.
func NewMLP(sizes []int, dropout float64, rng *rand.Rand) *MLP {
	m := &MLP{Sizes: sizes, Dropout: dropout}
	for l := 0; l+1 < len(sizes); l++ {
		d := Dense{In: sizes[l], Out: sizes[l+1], W: NewTensor(sizes[l]*sizes[l+1], true), B: NewTensor(sizes[l+1], false)}
		gain := 2.0
		if l+2 == len(sizes) {
			gain = 1
		}
		d.W.Normal(rng, math.Sqrt(gain/float64(sizes[l])))
		m.Layers = append(m.Layers, d)
	}
	return m
}

// Tensors returns the MLP's trainable tensors.
func (m *MLP) Tensors() []*Tensor {
	var ts []*Tensor
	for _, d := range m.Layers {
		ts = append(ts, d.W, d.B)
	}
	return ts
}

// NumParams returns the number of trainable values.
func (m *MLP) NumParams() int {
	n := 0
	for _, d := range m.Layers {
		n += len(d.W.W) + len(d.B.W)
	}
	return n
}

// MatmulParams returns the number of weights that take part in a
// multiply-add per example (biases excluded): a forward pass costs twice
// this many FLOPs per example, and a training step six times.
func (m *MLP) MatmulParams() int {
	n := 0
	for _, d := range m.Layers {
		n += d.In * d.Out
	}
	return n
}

func (m *MLP) ensure(batch int) {
	if batch <= m.batch {
		return
	}
	m.batch = batch
	hidden := len(m.Layers) - 1
	m.act, m.out, m.mask = make([][]float64, hidden), make([][]float64, len(m.Layers)), make([][]float64, hidden)
	widest := 0
	for l, d := range m.Layers {
		m.out[l] = make([]float64, batch*d.Out)
		if l < hidden {
			m.act[l] = make([]float64, batch*d.Out)
			m.mask[l] = make([]float64, batch*d.Out)
		}
		widest = max(widest, d.In, d.Out)
	}
	m.dcur, m.dprev = make([]float64, batch*widest), make([]float64, batch*widest)
}

// Forward computes the logits (batch × Sizes[last]) for x (batch ×
// Sizes[0], row-major). In training mode it applies dropout with masks
// drawn from rng and keeps what Backward needs; the returned slice is
// reused by the next call.
func (m *MLP) Forward(x []float64, batch int, train bool, rng *rand.Rand) []float64 {
	m.ensure(batch)
	m.in = x
	cur := x
	hidden := len(m.Layers) - 1
	for l, d := range m.Layers {
		z := m.out[l][:batch*d.Out]
		if l < hidden {
			z = m.act[l][:batch*d.Out]
		}
		for i := range batch {
			copy(z[i*d.Out:(i+1)*d.Out], d.B.W)
		}
		m.Pool.Gemm(false, false, batch, d.Out, d.In, 1, cur, d.In, d.W.W, d.Out, 1, z, d.Out)
		if l == hidden {
			return z
		}
		o, mask := m.out[l][:batch*d.Out], m.mask[l][:batch*d.Out]
		keep := 1 - m.Dropout
		drop := train && m.Dropout > 0
		for i, v := range z {
			v = max(v, 0)
			z[i] = v
			s := 1.0
			if drop {
				s = 0
				if rng.Float64() < keep {
					s = 1 / keep
				}
			}
			mask[i] = s
			o[i] = v * s
		}
		cur = o
	}
	panic("unreachable")
}

// Backward takes the gradient of the loss with respect to the last
// Forward's logits and sets every tensor's G to the gradient of the loss
// (overwriting it). It returns the gradient with respect to the input when
// wantInput is set, in a slice reused by the next call.
func (m *MLP) Backward(dlogits []float64, wantInput bool) []float64 {
	batch := len(dlogits) / m.Sizes[len(m.Sizes)-1]
	d := dlogits
	for l := len(m.Layers) - 1; l >= 0; l-- {
		layer := m.Layers[l]
		x := m.in
		if l > 0 {
			x = m.out[l-1][:batch*layer.In]
		}
		// dW = Xᵀ·dZ, dB = Σ rows of dZ.
		m.Pool.Gemm(true, false, layer.In, layer.Out, batch, 1, x, layer.In, d, layer.Out, 0, layer.W.G, layer.Out)
		gb := layer.B.G
		clear(gb)
		for i := range batch {
			row := d[i*layer.Out : (i+1)*layer.Out]
			for j, v := range row {
				gb[j] += v
			}
		}
		if l == 0 && !wantInput {
			return nil
		}
		// dX = dZ·Wᵀ, then back through dropout and ReLU into dZ of l-1.
		dx := m.dprev[:batch*layer.In]
		m.Pool.Gemm(false, true, batch, layer.In, layer.Out, 1, d, layer.Out, layer.W.W, layer.Out, 0, dx, layer.In)
		if l == 0 {
			return dx
		}
		act, mask := m.act[l-1][:batch*layer.In], m.mask[l-1][:batch*layer.In]
		for i := range dx {
			if act[i] <= 0 {
				dx[i] = 0
			} else {
				dx[i] *= mask[i]
			}
		}
		m.dcur, m.dprev = m.dprev, m.dcur
		d = m.dcur[:batch*layer.In]
	}
	return nil
}
