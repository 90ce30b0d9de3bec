package charlm

import (
	"math"
	"math/rand/v2"
	"testing"

	"asymptote.dev/asymptote/plugins/methods/internal/nn"
)

// TestModelGradientsMatchFiniteDifferences checks the embedding's gradient
// (the MLP's own is checked in package nn) against central differences,
// with a repeated symbol so that scattered gradients must add up.
func TestModelGradientsMatchFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	m := newModel(5, 3, 2, 4, 2, 0, rng, nn.Pool{})
	text := []uint8{0, 1, 1, 2, 4, 3, 1, 0}
	pos := []int32{3, 4, 7}
	tg := targets(text, pos)
	d := make([]float64, len(pos)*5)
	loss := func() float64 {
		return nn.SoftmaxXent(m.forward(text, pos, false, nil), 5, tg, d) / float64(len(pos))
	}
	loss()
	m.backward(text, pos, d)
	g := append([]float64(nil), m.emb.G...)
	const h = 1e-6
	for i := range m.emb.W {
		old := m.emb.W[i]
		m.emb.W[i] = old + h
		up := loss()
		m.emb.W[i] = old - h
		down := loss()
		m.emb.W[i] = old
		num := (up - down) / (2 * h)
		if math.Abs(num-g[i]) > 1e-6*(1+math.Abs(num)) {
			t.Errorf("emb[%d]: analytic %.9g, numeric %.9g", i, g[i], num)
		}
	}
	if g[4*2] != 0 || g[4*2+1] != 0 {
		t.Errorf("symbol 4 never in a context, yet its gradient is %v", g[8:10])
	}
}
