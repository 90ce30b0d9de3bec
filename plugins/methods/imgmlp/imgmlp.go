// Package imgmlp is an MLP image classifier on Fashion-MNIST (Debian's
// dataset-fashion-mnist): 784 pixels → depth ReLU layers of width units →
// softmax over 10 classes, trained with AdamW under a cosine schedule. Its
// axes are regularisation under label noise (dropout, weight_decay,
// label_noise), data (train_size, epochs) and ensembles (members, averaged
// in probability).
//
// Training uses the first train_size of the 60,000 training images, with a
// share label_noise of their labels replaced by a different class drawn
// from the trial's seed; validation uses the first val_size of the 10,000
// test images, with clean labels.
package imgmlp

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"asymptote.dev/asymptote/plugins/methods/corpus"
	"asymptote.dev/asymptote/plugins/methods/internal/nn"
	"asymptote.dev/asymptote/plugins/methods/internal/params"
	"asymptote.dev/asymptote/plugins/sdk"
)

// Version is the method's version; bump it when results for the same
// parameters and seed change.
const Version = "1"

// MetricValAccuracy names the ensemble's validation accuracy.
const MetricValAccuracy = "val_accuracy"

// classes is the number of Fashion-MNIST classes.
const classes = 10

// Method is the imgmlp method.
type Method struct {
	// DataDirs overrides where fashion-mnist/ is looked for; nil means
	// corpus.FashionDirs.
	DataDirs []string
}

var _ sdk.Method = (*Method)(nil)

// New returns the imgmlp method reading data from the default locations.
func New() *Method { return &Method{} }

var paramInfo = []sdk.ParamInfo{
	{Name: "width", Type: "int", Default: 128.0, Description: "hidden units per layer, 1–4096"},
	{Name: "depth", Type: "int", Default: 1.0, Description: "hidden layers, 1–8"},
	{Name: "lr", Type: "float", Default: 1e-3, Description: "peak AdamW learning rate (warm-up, then cosine decay to lr/10), (0, 1]"},
	{Name: "weight_decay", Type: "float", Default: 0.0, Description: "decoupled AdamW weight decay on weights, 0–100"},
	{Name: "dropout", Type: "float", Default: 0.0, Description: "dropout after each hidden layer, 0–0.9"},
	{Name: "label_noise", Type: "float", Default: 0.0, Description: "share of training labels replaced by a different random class, 0–0.9"},
	{Name: "train_size", Type: "int", Default: 10000.0, Description: "training images (a prefix of the 60,000), 100–60000"},
	{Name: "epochs", Type: "float", Default: 5.0, Description: "passes over the training images, (0, 1000]"},
	{Name: "batch", Type: "int", Default: 128.0, Description: "images per optimizer step, 1–4096"},
	{Name: "members", Type: "int", Default: 1.0, Description: "independently seeded ensemble members trained in the trial, 1–64; evaluation averages their predicted distributions"},
	{Name: "val_size", Type: "int", Default: 10000.0, Description: "test images scored (a prefix of the 10,000), 100–10000"},
	{Name: "report_every", Type: "int", Default: 0.0, Description: "optimizer steps between reports (0: about 8 reports)"},
	{Name: "checkpoint_every", Type: "int", Default: 0.0, Description: "optimizer steps between checkpoints (0: only when the host asks for one); results do not depend on it"},
}

// Info describes the method.
func (m *Method) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name:        "imgmlp",
		Version:     Version,
		Description: "MLP classifier on Fashion-MNIST with label noise (val_loss in nats, val_accuracy)",
		Params:      paramInfo,
	}, nil
}

type config struct {
	width, depth                    int
	lr, weightDecay, dropout, noise float64
	trainSize, samples, batch       int
	members, valSize, every         int
	checkpointEvery                 int
	epochs                          float64
}

func parse(req *sdk.TrialRequest, train, test *corpus.Images) (*config, error) {
	r := params.New(req, paramInfo)
	c := &config{
		width:       r.Int("width", 128, 1, 4096),
		depth:       r.Int("depth", 1, 1, 8),
		lr:          r.Float("lr", 1e-3, 1e-12, 1),
		weightDecay: r.Float("weight_decay", 0, 0, 100),
		dropout:     r.Float("dropout", 0, 0, 0.9),
		noise:       r.Float("label_noise", 0, 0, 0.9),
		trainSize:   r.Int("train_size", 10000, 100, int64(train.Len())),
		epochs:      r.Float("epochs", 5, 1e-6, 1000),
		batch:       r.Int("batch", 128, 1, 4096),
		members:     r.Int("members", 1, 1, 64),
		valSize:     r.Int("val_size", 10000, 100, int64(test.Len())),
		every:       r.Int("report_every", 0, 0, 1e9),
		// checkpoint_every is not in the model: trials that set it differ
		// from those that do not only by their extra reports.
		checkpointEvery: r.Int("checkpoint_every", 0, 0, 1e9),
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	c.samples = int(math.Round(c.epochs * float64(c.trainSize)))
	if c.samples < c.batch {
		return nil, &sdk.ParamError{Param: "epochs", Reason: fmt.Sprintf("%g epochs of %d images is under one batch of %d", c.epochs, c.trainSize, c.batch)}
	}
	return c, nil
}

// Pixel standardisation: Fashion-MNIST's training-set mean and standard
// deviation of pixel/255.
const pixelMean, pixelStd = 0.2860, 0.3530

var pixelValue = func() (v [256]float64) {
	for i := range v {
		v[i] = (float64(i)/255 - pixelMean) / pixelStd
	}
	return v
}()

// Run trains the trial's members in lockstep and reports train_loss (on
// the noisy labels), val_loss and val_accuracy (the ensemble's, on clean
// test labels).
func (m *Method) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	// Names first: a misspelt parameter is reported even without the
	// data, and before the time it takes to load.
	if err := params.Unknown(req, paramInfo); err != nil {
		return nil, err
	}
	train, test, err := corpus.LoadFashionMNIST(m.DataDirs)
	if err != nil {
		return nil, fmt.Errorf("imgmlp: %w", err)
	}
	c, err := parse(req, train, test)
	if err != nil {
		return nil, err
	}
	t := newTrainer(c, train, test, req.Seed, nn.Pool{Threads: req.Threads})
	steps := (c.samples + c.batch - 1) / c.batch
	loop := nn.Loop{
		Steps:   steps,
		Every:   c.every,
		Members: c.members,
		Step: func(i int) (float64, int) {
			n := min(c.batch, c.samples-i*c.batch)
			return t.step(i, steps, n), n * c.members
		},
		Eval:        t.evaluate,
		Checkpoints: &nn.Checkpoints{Request: req, Every: c.checkpointEvery, Learners: t.learners()},
	}
	last, err := loop.Run(ctx, report)
	if err != nil {
		return nil, err
	}
	return &sdk.Result{Metrics: map[string]float64{
		sdk.MetricValLoss:      last[sdk.MetricValLoss],
		sdk.MetricTrainLoss:    last[sdk.MetricTrainLoss],
		MetricValAccuracy:      last[MetricValAccuracy],
		sdk.MetricParams:       float64(t.members[0].NumParams()),
		sdk.MetricTokens:       float64(c.samples),
		sdk.MetricUniqueTokens: float64(c.trainSize),
		sdk.MetricEpochs:       float64(c.samples) / float64(c.trainSize),
		sdk.MetricFLOPs:        6 * float64(t.members[0].MatmulParams()) * float64(c.samples) * float64(c.members),
		sdk.MetricMembers:      float64(c.members),
	}}, nil
}

// member is one ensemble member with its own random stream (initialisation,
// data order, dropout) and optimizer.
type member struct {
	*nn.MLP
	src    *rand.PCG
	rng    *rand.Rand
	opt    *nn.AdamW
	epochs *nn.Epochs
	idx    []int32
}

type trainer struct {
	c           *config
	train, test *corpus.Images
	labels      []int32 // training labels after noise
	members     []*member
	x           []float64
	tg          []int32
	dlogits     []float64
	mix         *nn.Mixture
}

func newTrainer(c *config, train, test *corpus.Images, seed int64, pool nn.Pool) *trainer {
	t := &trainer{c: c, train: train, test: test, dlogits: make([]float64, c.batch*classes)}
	// Label noise is the trial's data, shared by its members: stream 0.
	noise := rand.New(rand.NewPCG(uint64(seed), 0))
	t.labels = make([]int32, c.trainSize)
	for i := range t.labels {
		y := int32(train.Labels[i])
		if noise.Float64() < c.noise {
			y = (y + 1 + int32(noise.Uint64()%(classes-1))) % classes
		}
		t.labels[i] = y
	}
	sizes := []int{train.Size()}
	for range c.depth {
		sizes = append(sizes, c.width)
	}
	sizes = append(sizes, classes)
	for k := range c.members {
		src := rand.NewPCG(uint64(seed), uint64(k)+1)
		rng := rand.New(src)
		mlp := nn.NewMLP(sizes, c.dropout, rng)
		mlp.Pool = pool
		t.members = append(t.members, &member{MLP: mlp, src: src, rng: rng, opt: nn.NewAdamW(c.weightDecay), epochs: nn.NewEpochs(c.trainSize, rng)})
	}
	t.mix = nn.NewMixture(c.valSize, classes)
	return t
}

// learners is what a checkpoint saves: per member its weights, optimizer,
// generator and data position. The noisy labels are drawn again from the
// seed (stream 0), and the rest is scratch.
func (t *trainer) learners() []nn.Learner {
	ls := make([]nn.Learner, len(t.members))
	for k, mb := range t.members {
		ls[k] = nn.Learner{Tensors: mb.Tensors(), Opt: mb.opt, Src: mb.src, Epochs: mb.epochs}
	}
	return ls
}

// load writes the standardised pixels of images idx (from row0) into t.x.
func (t *trainer) load(im *corpus.Images, idx []int32) []float64 {
	size := im.Size()
	if need := len(idx) * size; len(t.x) < need {
		t.x = make([]float64, need)
	}
	x := t.x[:len(idx)*size]
	for r, i := range idx {
		row := x[r*size : (r+1)*size]
		for j, p := range im.Pixels[int(i)*size : (int(i)+1)*size] {
			row[j] = pixelValue[p]
		}
	}
	return x
}

// step trains every member on its next n images and returns the summed
// training loss.
func (t *trainer) step(step, steps, n int) float64 {
	lr := nn.CosineLR(t.c.lr, step, steps, min(100, steps/20))
	total := 0.0
	for _, mb := range t.members {
		mb.idx = mb.epochs.Next(mb.idx, n)
		x := t.load(t.train, mb.idx)
		t.tg = t.tg[:0]
		for _, i := range mb.idx {
			t.tg = append(t.tg, t.labels[i])
		}
		logits := mb.Forward(x, n, true, mb.rng)
		d := t.dlogits[:n*classes]
		total += nn.SoftmaxXent(logits, classes, t.tg, d)
		mb.Backward(d, false)
		mb.opt.Step(mb.Tensors(), lr)
	}
	return total
}

// evalBatch is the number of test images per forward pass.
const evalBatch = 500

// evaluate returns the ensemble's val_loss and val_accuracy.
func (t *trainer) evaluate(ctx context.Context) (map[string]float64, error) {
	t.mix.Reset()
	idx := make([]int32, 0, evalBatch)
	for _, mb := range t.members {
		for i := 0; i < t.c.valSize; i += evalBatch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			idx = idx[:0]
			for j := i; j < min(i+evalBatch, t.c.valSize); j++ {
				idx = append(idx, int32(j))
			}
			logits := mb.Forward(t.load(t.test, idx), len(idx), false, nil)
			nn.Softmax(logits, classes)
			t.mix.Add(i, logits[:len(idx)*classes])
		}
		t.mix.Done()
	}
	tg := make([]int32, t.c.valSize)
	for i := range tg {
		tg[i] = int32(t.test.Labels[i])
	}
	nll, acc := t.mix.Score(tg)
	return map[string]float64{sdk.MetricValLoss: nll, MetricValAccuracy: acc}, nil
}
