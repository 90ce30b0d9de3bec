// Package charlm is a character-level neural language model trained on the
// King James Bible: a Bengio-style MLP over a window of preceding
// characters (embedding → depth ReLU layers of width units → softmax over
// the corpus's byte vocabulary), trained with AdamW under a cosine
// schedule. It exposes every axis of a scaling-law study: model size
// (width, depth), data (unique_tokens, a prefix of the training split),
// repetition (tokens or epochs over those unique tokens), regularisation
// (weight_decay, dropout) and ensembles (members, averaged in probability).
//
// Losses are in nats per character. val_loss scores the same fixed
// validation characters for every trial (see corpus.MaxContext), so trials
// and the ngram method compare directly.
package charlm

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

// Method is the charlm method.
type Method struct {
	// DataDirs overrides where kjv.txt is looked for; nil means
	// corpus.DefaultDirs.
	DataDirs []string
}

var _ sdk.Method = (*Method)(nil)

// New returns the charlm method reading data from the default locations.
func New() *Method { return &Method{} }

var paramInfo = []sdk.ParamInfo{
	{Name: "width", Type: "int", Default: 128.0, Description: "hidden units per layer, 1–4096"},
	{Name: "depth", Type: "int", Default: 1.0, Description: "hidden layers, 1–8"},
	{Name: "context", Type: "int", Default: 8.0, Description: "characters of history, 1–64"},
	{Name: "embed", Type: "int", Default: 16.0, Description: "embedding size per character, 1–256"},
	{Name: "lr", Type: "float", Default: 1e-2, Description: "peak AdamW learning rate (warm-up, then the schedule), (0, 1]"},
	{Name: "schedule", Type: "string", Default: "cosine", Description: "learning-rate schedule after the warm-up: cosine (decay to lr/10 at the last step) or constant (lr to the end, 100 warm-up steps; a run of more tokens may continue this one's checkpoints, as successive halving with continue does)"},
	{Name: "weight_decay", Type: "float", Default: 0.0, Description: "decoupled AdamW weight decay on weights and embeddings, 0–100"},
	{Name: "dropout", Type: "float", Default: 0.0, Description: "dropout after each hidden layer, 0–0.9"},
	{Name: "unique_tokens", Type: "int", Default: 1e6, Description: "distinct training characters: a prefix of the training split, 1000 to its length (3,869,183)"},
	{Name: "tokens", Type: "int", Default: nil, Optional: true, Description: "characters seen in training per member (default unique_tokens × epochs, else 200,000)"},
	{Name: "epochs", Type: "float", Default: nil, Optional: true, Description: "passes over unique_tokens; give tokens or epochs, not both"},
	{Name: "batch", Type: "int", Default: 128.0, Description: "characters per optimizer step, 1–4096"},
	{Name: "members", Type: "int", Default: 1.0, Description: "independently seeded ensemble members trained in the trial, 1–64; evaluation averages their predicted distributions"},
	{Name: "eval_tokens", Type: "int", Default: 16384.0, Description: "validation characters scored, 1000 to the validation split's size"},
	{Name: "report_every", Type: "int", Default: 0.0, Description: "optimizer steps between reports of train_loss and val_loss (0: about 8 reports)"},
	{Name: "checkpoint_every", Type: "int", Default: 0.0, Description: "optimizer steps between checkpoints (0: only when the host asks for one); results do not depend on it"},
}

// Info describes the method.
func (m *Method) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name:        "charlm",
		Version:     Version,
		Description: "character MLP language model on the King James Bible (val_loss in nats/char)",
		Params:      paramInfo,
	}, nil
}

// config is a trial's checked parameters.
type config struct {
	width, depth, context, embed int
	lr, weightDecay, dropout     float64
	unique, tokens, batch        int
	members, evalTokens, every   int
	checkpointEvery              int
	// constant is the constant schedule (else cosine).
	constant bool
}

func parse(req *sdk.TrialRequest, text *corpus.Text) (*config, error) {
	r := params.New(req, paramInfo)
	c := &config{
		width:       r.Int("width", 128, 1, 4096),
		depth:       r.Int("depth", 1, 1, 8),
		context:     r.Int("context", 8, 1, corpus.MaxContext),
		embed:       r.Int("embed", 16, 1, 256),
		lr:          r.Float("lr", 1e-2, 1e-12, 1),
		weightDecay: r.Float("weight_decay", 0, 0, 100),
		dropout:     r.Float("dropout", 0, 0, 0.9),
		unique:      r.Int("unique_tokens", 1e6, 1000, int64(len(text.Train))),
		batch:       r.Int("batch", 128, 1, 4096),
		members:     r.Int("members", 1, 1, 64),
		evalTokens:  r.Int("eval_tokens", 16384, 1000, int64(text.EvalSize())),
		every:       r.Int("report_every", 0, 0, 1e9),
		// checkpoint_every is not in the model: trials that set it differ
		// from those that do not only by their extra reports.
		checkpointEvery: r.Int("checkpoint_every", 0, 0, 1e9),
	}
	switch sched, err := req.String("schedule", "cosine"); {
	case err != nil:
		r.Fail(err)
	case sched == "constant":
		c.constant = true
	case sched != "cosine":
		r.Fail(&sdk.ParamError{Param: "schedule", Reason: fmt.Sprintf("%q is not a schedule; use cosine or constant", sched)})
	}
	switch {
	case r.Has("tokens") && r.Has("epochs"):
		r.Fail(&sdk.ParamError{Param: "epochs", Reason: "give tokens or epochs, not both"})
	case r.Has("epochs"):
		e := r.Float("epochs", 1, 1e-6, 1e4)
		c.tokens = int(math.Round(e * float64(c.unique)))
		if r.Err() == nil && c.tokens < c.batch {
			r.Fail(&sdk.ParamError{Param: "epochs", Reason: fmt.Sprintf("%g epochs of %d unique tokens is under one batch of %d", e, c.unique, c.batch)})
		}
	default:
		c.tokens = r.Int("tokens", 200000, int64(c.batch), 1e10)
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if c.unique <= c.context {
		return nil, &sdk.ParamError{Param: "unique_tokens", Reason: fmt.Sprintf("must exceed context (%d)", c.context)}
	}
	return c, nil
}

// Run trains the trial's members in lockstep and reports train_loss (the
// members' mean training loss since the last report) and val_loss (the
// ensemble's) every report_every steps and at the end.
func (m *Method) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	// Names first: a misspelt parameter is reported even without the
	// data, and before the time it takes to load.
	if err := params.Unknown(req, paramInfo); err != nil {
		return nil, err
	}
	text, err := corpus.LoadKJV(m.DataDirs)
	if err != nil {
		return nil, fmt.Errorf("charlm: %w", err)
	}
	c, err := parse(req, text)
	if err != nil {
		return nil, err
	}
	t := newTrainer(c, text, req.Seed, nn.Pool{Threads: req.Threads})
	steps := (c.tokens + c.batch - 1) / c.batch
	loop := nn.Loop{
		Steps:   steps,
		Every:   c.every,
		Members: c.members,
		// As t.flops counts them: 6 per matmul parameter per example.
		FLOPsPerExample: 6 * float64(t.members[0].mlp.MatmulParams()),
		Step: func(i int) (float64, int) {
			n := min(c.batch, c.tokens-i*c.batch)
			return t.step(i, steps, n), n * c.members
		},
		Eval: func(ctx context.Context) (map[string]float64, error) {
			v, err := t.evaluate(ctx)
			return map[string]float64{sdk.MetricValLoss: v}, err
		},
		Checkpoints: &nn.Checkpoints{Request: req, Every: c.checkpointEvery, Learners: t.learners(),
			Continue: c.constant, StepExamples: c.batch * c.members},
	}
	last, err := loop.Run(ctx, report)
	if err != nil {
		return nil, err
	}
	valLoss := last[sdk.MetricValLoss]
	return &sdk.Result{Metrics: map[string]float64{
		sdk.MetricValLoss:      valLoss,
		sdk.MetricTrainLoss:    last[sdk.MetricTrainLoss],
		sdk.MetricParams:       float64(t.members[0].numParams()),
		sdk.MetricTokens:       float64(c.tokens),
		sdk.MetricUniqueTokens: float64(c.unique),
		sdk.MetricEpochs:       float64(c.tokens) / float64(c.unique),
		sdk.MetricFLOPs:        t.flops(),
		sdk.MetricMembers:      float64(c.members),
	}}, nil
}

// constantWarmup is the warm-up of the constant schedule: fixed, so that it
// does not depend on the run's length.
const constantWarmup = 100

// member is one ensemble member with its own random stream (for
// initialisation, data order and dropout) and optimizer.
type member struct {
	*model
	src    *rand.PCG
	rng    *rand.Rand
	opt    *nn.AdamW
	epochs *nn.Epochs // over training targets context … unique_tokens-1
	pos    []int32
}

type trainer struct {
	c       *config
	text    *corpus.Text
	train   []uint8 // the unique_tokens prefix
	members []*member
	mix     *nn.Mixture
	dlogits []float64
}

func newTrainer(c *config, text *corpus.Text, seed int64, pool nn.Pool) *trainer {
	t := &trainer{c: c, text: text, train: text.Train[:c.unique], dlogits: make([]float64, c.batch*len(text.Vocab))}
	for k := range c.members {
		src := rand.NewPCG(uint64(seed), uint64(k)+1)
		rng := rand.New(src)
		mb := &member{
			model:  newModel(len(text.Vocab), c.context, c.embed, c.width, c.depth, c.dropout, rng, pool),
			src:    src,
			rng:    rng,
			opt:    nn.NewAdamW(c.weightDecay),
			epochs: nn.NewEpochs(c.unique-c.context, rng),
		}
		t.members = append(t.members, mb)
	}
	t.mix = nn.NewMixture(c.evalTokens, len(text.Vocab))
	return t
}

// learners is what a checkpoint saves: per member its weights, optimizer,
// generator and data position. The rest of a member (its scratch) is
// rebuilt each step.
func (t *trainer) learners() []nn.Learner {
	ls := make([]nn.Learner, len(t.members))
	for k, mb := range t.members {
		ls[k] = nn.Learner{Tensors: mb.tensors(), Opt: mb.opt, Src: mb.src, Epochs: mb.epochs}
	}
	return ls
}

// batch returns the next n training target positions of mb.
func (mb *member) batch(n, context int) []int32 {
	mb.pos = mb.epochs.Next(mb.pos, n)
	for i := range mb.pos {
		mb.pos[i] += int32(context)
	}
	return mb.pos
}

// step trains every member on its next n positions and returns the summed
// training loss over members and positions.
func (t *trainer) step(step, steps, n int) float64 {
	lr := nn.CosineLR(t.c.lr, step, steps, min(100, steps/20))
	if t.c.constant {
		lr = nn.ConstantLR(t.c.lr, step, constantWarmup)
	}
	v := len(t.text.Vocab)
	total := 0.0
	for _, mb := range t.members {
		pos := mb.batch(n, t.c.context)
		logits := mb.forward(t.train, pos, true, mb.rng)
		d := t.dlogits[:n*v]
		total += nn.SoftmaxXent(logits, v, targets(t.train, pos), d)
		mb.backward(t.train, pos, d)
		mb.opt.Step(mb.tensors(), lr)
	}
	return total
}

func targets(text []uint8, pos []int32) []int32 {
	out := make([]int32, len(pos))
	for i, p := range pos {
		out[i] = int32(text[p])
	}
	return out
}

// evalBatch is the number of validation positions scored per forward pass.
const evalBatch = 512

// evaluate returns the ensemble's mean loss on the fixed validation
// characters.
func (t *trainer) evaluate(ctx context.Context) (float64, error) {
	t.mix.Reset()
	v := len(t.text.Vocab)
	n := t.c.evalTokens
	pos := make([]int32, 0, evalBatch)
	for _, mb := range t.members {
		for i := 0; i < n; i += evalBatch {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			pos = pos[:0]
			for p := i; p < min(i+evalBatch, n); p++ {
				pos = append(pos, int32(corpus.MaxContext+p))
			}
			logits := mb.forward(t.text.Val, pos, false, nil)
			nn.Softmax(logits, v)
			t.mix.Add(i, logits[:len(pos)*v])
		}
		t.mix.Done()
	}
	tg := make([]int32, n)
	for i := range tg {
		tg[i] = int32(t.text.Val[corpus.MaxContext+i])
	}
	nll, _ := t.mix.Score(tg)
	return nll, nil
}

// flops counts training FLOPs: 6 per matmul weight (2 forward, 4
// backward) per character per member. Embedding lookups, biases,
// activations, the optimizer and evaluation are left out; they add a few
// percent at most for the sizes this method allows.
func (t *trainer) flops() float64 {
	return 6 * float64(t.members[0].mlp.MatmulParams()) * float64(t.c.tokens) * float64(t.c.members)
}
