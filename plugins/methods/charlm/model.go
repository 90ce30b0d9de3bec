package charlm

import (
	"math/rand/v2"

	"asymptote.dev/asymptote/plugins/methods/internal/nn"
)

// model is a Bengio-style character MLP: the context's symbols are
// embedded, concatenated and fed to an MLP whose logits range over the
// vocabulary.
type model struct {
	vocab, context, embed int
	emb                   *nn.Tensor // vocab × embed
	mlp                   *nn.MLP
	x                     []float64 // batch × context·embed inputs
}

func newModel(vocab, context, embed, width, depth int, dropout float64, rng *rand.Rand, pool nn.Pool) *model {
	m := &model{vocab: vocab, context: context, embed: embed, emb: nn.NewTensor(vocab*embed, true)}
	m.emb.Normal(rng, 1)
	sizes := []int{context * embed}
	for range depth {
		sizes = append(sizes, width)
	}
	sizes = append(sizes, vocab)
	m.mlp = nn.NewMLP(sizes, dropout, rng)
	m.mlp.Pool = pool
	return m
}

func (m *model) tensors() []*nn.Tensor { return append([]*nn.Tensor{m.emb}, m.mlp.Tensors()...) }

// numParams is the exact number of trainable values.
func (m *model) numParams() int { return len(m.emb.W) + m.mlp.NumParams() }

// forward returns the logits predicting text[p] from the context symbols
// before it, for each p in pos (each at least m.context).
func (m *model) forward(text []uint8, pos []int32, train bool, rng *rand.Rand) []float64 {
	in := m.context * m.embed
	if need := len(pos) * in; len(m.x) < need {
		m.x = make([]float64, need)
	}
	x := m.x[:len(pos)*in]
	for r, p := range pos {
		row := x[r*in : (r+1)*in]
		for j, s := range text[int(p)-m.context : p] {
			copy(row[j*m.embed:(j+1)*m.embed], m.emb.W[int(s)*m.embed:(int(s)+1)*m.embed])
		}
	}
	return m.mlp.Forward(x, len(pos), train, rng)
}

// backward sets every tensor's gradient from the gradient of the loss with
// respect to the last forward's logits.
func (m *model) backward(text []uint8, pos []int32, dlogits []float64) {
	dx := m.mlp.Backward(dlogits, true)
	in := m.context * m.embed
	g := m.emb.G
	clear(g)
	for r, p := range pos {
		row := dx[r*in : (r+1)*in]
		for j, s := range text[int(p)-m.context : p] {
			dst := g[int(s)*m.embed : (int(s)+1)*m.embed]
			for k, v := range row[j*m.embed : (j+1)*m.embed] {
				dst[k] += v
			}
		}
	}
}
