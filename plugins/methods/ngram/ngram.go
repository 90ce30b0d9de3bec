// Package ngram is an interpolated character n-gram language model on the
// same King James Bible splits as charlm, scored on the same validation
// characters in nats per character, so the two cross over along the data
// axis: counts win on little data, the neural model on more.
//
// Smoothing is interpolated Witten–Bell (the default) or interpolated
// Kneser–Ney with one absolute discount. Training is counting: one pass per
// order over the unique_tokens prefix of the training split.
package ngram

import (
	"context"
	"fmt"
	"math"

	"asymptote.dev/asymptote/plugins/methods/corpus"
	"asymptote.dev/asymptote/plugins/methods/internal/params"
	"asymptote.dev/asymptote/plugins/sdk"
)

// Version is the method's version; bump it when results for the same
// parameters change.
const Version = "1"

// Method is the ngram method.
type Method struct {
	// DataDirs overrides where kjv.txt is looked for; nil means
	// corpus.DefaultDirs.
	DataDirs []string
}

var _ sdk.Method = (*Method)(nil)

// New returns the ngram method reading data from the default locations.
func New() *Method { return &Method{} }

var paramInfo = []sdk.ParamInfo{
	{Name: "order", Type: "int", Default: 5.0, Description: "n: the model conditions on n-1 characters, 1–9"},
	{Name: "unique_tokens", Type: "int", Default: 1e6, Description: "training characters: a prefix of the training split, 1000 to its length (3,869,183)"},
	{Name: "smoothing", Type: "string", Default: "wb", Description: `"wb" (interpolated Witten–Bell) or "kn" (interpolated Kneser–Ney)`},
	{Name: "discount", Type: "float", Default: 0.75, Description: "Kneser–Ney's absolute discount, (0, 1); only with smoothing kn"},
	{Name: "eval_tokens", Type: "int", Default: 16384.0, Description: "validation characters scored (the same ones as charlm's), 1000 to the validation split's size"},
}

// Info describes the method.
func (m *Method) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name:        "ngram",
		Version:     Version,
		Description: "interpolated character n-gram (Witten–Bell or Kneser–Ney) on the King James Bible (val_loss in nats/char)",
		Params:      paramInfo,
	}, nil
}

type config struct {
	order, unique, evalTokens int
	kn                        bool
	discount                  float64
}

func parse(req *sdk.TrialRequest, text *corpus.Text) (*config, error) {
	r := params.New(req, paramInfo)
	c := &config{
		order:      r.Int("order", 5, 1, maxOrder),
		unique:     r.Int("unique_tokens", 1e6, 1000, int64(len(text.Train))),
		discount:   r.Float("discount", 0.75, 1e-6, 1-1e-6),
		evalTokens: r.Int("eval_tokens", 16384, 1000, int64(text.EvalSize())),
	}
	s, err := req.String("smoothing", "wb")
	r.Fail(err)
	switch s {
	case "wb":
		if r.Has("discount") {
			r.Fail(&sdk.ParamError{Param: "discount", Reason: "only applies with smoothing kn"})
		}
	case "kn":
		c.kn = true
	default:
		r.Fail(&sdk.ParamError{Param: "smoothing", Reason: fmt.Sprintf("%q is not one of \"wb\", \"kn\"", s)})
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Run counts the trial's n-grams and scores them. It reports once, with
// train_loss (on the first eval_tokens training characters, which the model
// has seen) and val_loss. The seed is unused: counting is deterministic.
func (m *Method) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	// Names first: a misspelt parameter is reported even without the
	// data, and before the time it takes to load.
	if err := params.Unknown(req, paramInfo); err != nil {
		return nil, err
	}
	text, err := corpus.LoadKJV(m.DataDirs)
	if err != nil {
		return nil, fmt.Errorf("ngram: %w", err)
	}
	c, err := parse(req, text)
	if err != nil {
		return nil, err
	}
	train := text.Train[:c.unique]
	mod, err := build(ctx, train, c.order, len(text.Vocab), c.kn, c.discount, req.Threads)
	if err != nil {
		return nil, err
	}
	val, err := mod.loss(ctx, text.Val, corpus.MaxContext, c.evalTokens, req.Threads)
	if err != nil {
		return nil, err
	}
	trainN := min(c.evalTokens, len(train)-corpus.MaxContext)
	trainLoss, err := mod.loss(ctx, train, corpus.MaxContext, trainN, req.Threads)
	if err != nil {
		return nil, err
	}
	if report != nil {
		err := report(sdk.Metrics{Step: 1, Values: map[string]float64{
			sdk.MetricTrainLoss: trainLoss, sdk.MetricValLoss: val, sdk.MetricTokens: float64(c.unique),
		}})
		if err != nil {
			return nil, err
		}
	}
	return &sdk.Result{Metrics: map[string]float64{
		sdk.MetricValLoss:      val,
		sdk.MetricTrainLoss:    trainLoss,
		sdk.MetricParams:       float64(mod.size()),
		sdk.MetricTokens:       float64(c.unique),
		sdk.MetricUniqueTokens: float64(c.unique),
		sdk.MetricEpochs:       1,
		sdk.MetricMembers:      1,
	}}, nil
}

// evalChunk is the number of positions one worker scores at a time; chunks
// are summed in order, so the loss does not depend on the thread count.
const evalChunk = 4096

// loss returns the mean negative log-probability of text[start:start+n]
// given the text before each position.
func (m *model) loss(ctx context.Context, text []uint8, start, n, threads int) (float64, error) {
	chunks := (n + evalChunk - 1) / evalChunk
	sums := make([]float64, chunks)
	err := parallel(ctx, chunks, threads, func(ch int) error {
		s := 0.0
		for i := start + ch*evalChunk; i < start+min((ch+1)*evalChunk, n); i++ {
			s -= math.Log(m.prob(text, i, m.order))
		}
		sums[ch] = s
		return nil
	})
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, s := range sums {
		total += s
	}
	return total / float64(n), nil
}
