package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMLPGradientsMatchFiniteDifferences checks Backward against central
// differences of the loss for every parameter and input of small MLPs.
func TestMLPGradientsMatchFiniteDifferences(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
	}{
		{"no hidden layer", []int{4, 3}},
		{"one hidden layer", []int{5, 7, 4}},
		{"three hidden layers", []int{3, 6, 5, 4, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			m := NewMLP(tc.sizes, 0, rng)
			for _, ts := range m.Tensors() {
				ts.Normal(rng, 0.7) // nonzero biases too
			}
			const batch = 6
			classes := tc.sizes[len(tc.sizes)-1]
			x := randSlice(rng, batch*tc.sizes[0])
			tg := make([]int32, batch)
			for i := range tg {
				tg[i] = int32(rng.IntN(classes))
			}
			d := make([]float64, batch*classes)
			loss := func() float64 {
				return SoftmaxXent(m.Forward(x, batch, false, nil), classes, tg, d) / batch
			}
			loss()
			dx := append([]float64(nil), m.Backward(d, true)...)
			check := func(what string, w []float64, g []float64) {
				const h = 1e-6
				for i := range w {
					old := w[i]
					w[i] = old + h
					up := loss()
					w[i] = old - h
					down := loss()
					w[i] = old
					num := (up - down) / (2 * h)
					if math.Abs(num-g[i]) > 1e-6*(1+math.Abs(num)) {
						t.Errorf("%s[%d]: analytic %.9g, numeric %.9g", what, i, g[i], num)
					}
				}
			}
			for l, layer := range m.Layers {
				gw := append([]float64(nil), layer.W.G...)
				gb := append([]float64(nil), layer.B.G...)
				check("W"+string(rune('0'+l)), layer.W.W, gw)
				check("B"+string(rune('0'+l)), layer.B.W, gb)
			}
			check("x", x, dx)
		})
	}
}

// TestDropoutIsInvertedAndSeeded checks that dropout keeps the expected
// activation and that the same random stream gives the same masks.
func TestDropoutIsInvertedAndSeeded(t *testing.T) {
	build := func() (*MLP, []float64) {
		rng := rand.New(rand.NewPCG(5, 6))
		m := NewMLP([]int{8, 512, 2}, 0.5, rng)
		return m, randSlice(rng, 4*8)
	}
	m1, x := build()
	m2, _ := build()
	r1, r2 := rand.New(rand.NewPCG(7, 8)), rand.New(rand.NewPCG(7, 8))
	a := append([]float64(nil), m1.Forward(x, 4, true, r1)...)
	b := m2.Forward(x, 4, true, r2)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("logit %d: %v vs %v under the same seed", i, a[i], b[i])
		}
	}
	kept, sum := 0, 0.0
	for _, s := range m1.mask[0][:4*512] {
		if s != 0 {
			kept++
			sum += s
		}
	}
	if frac := float64(kept) / (4 * 512); math.Abs(frac-0.5) > 0.05 {
		t.Errorf("kept %.3f of units, want about 0.5", frac)
	}
	if sum != float64(kept)*2 {
		t.Errorf("kept units scaled by %v, want 2", sum/float64(kept))
	}
}

func TestAdamWMinimisesAQuadraticAndDecays(t *testing.T) {
	w := NewTensor(2, true)
	w.W[0], w.W[1] = 3, -2
	opt := NewAdamW(0)
	for range 2000 {
		w.G[0], w.G[1] = 2*(w.W[0]-1), 2*(w.W[1]+1)
		opt.Step([]*Tensor{w}, 0.01)
	}
	if math.Abs(w.W[0]-1) > 1e-3 || math.Abs(w.W[1]+1) > 1e-3 {
		t.Errorf("minimum at %v, want [1 -1]", w.W)
	}
	d := NewTensor(1, true)
	d.W[0] = 1
	NewAdamW(0.5).Step([]*Tensor{d}, 0.1) // zero gradient: pure decay
	if math.Abs(d.W[0]-0.95) > 1e-12 {
		t.Errorf("decayed weight = %v, want 0.95", d.W[0])
	}
}

func TestCosineLR(t *testing.T) {
	tests := []struct {
		step, total, warmup int
		want                float64
	}{
		{0, 100, 10, 0.1},
		{9, 100, 10, 1},
		{10, 100, 10, 1},
		{99, 100, 10, 0.1},
		{0, 1, 0, 1},
	}
	for _, tc := range tests {
		if got := CosineLR(1, tc.step, tc.total, tc.warmup); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("CosineLR(1, %d, %d, %d) = %v, want %v", tc.step, tc.total, tc.warmup, got, tc.want)
		}
	}
}

func TestMixtureAveragesProbabilities(t *testing.T) {
	x := NewMixture(2, 2)
	x.Add(0, []float64{0.9, 0.1, 0.2, 0.8})
	x.Done()
	x.Add(0, []float64{0.5, 0.5})
	x.Add(1, []float64{0.6, 0.4})
	x.Done()
	nll, acc := x.Score([]int32{0, 1})
	want := -(math.Log(0.7) + math.Log(0.6)) / 2
	if math.Abs(nll-want) > 1e-12 || acc != 1 {
		t.Errorf("Score = %v, %v; want %v, 1", nll, acc, want)
	}
}
