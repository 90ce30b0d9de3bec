// Package synthetic is a simulated training method: it draws a loss from a
// configurable scaling law instead of training anything. It exercises
// orchestration and analysis at the scale of real studies (tens of
// thousands of trials) in microseconds per trial.
//
// The law is Chinchilla's L(N, D) = E + A/N^α + B/D'^β, where D' is the
// effective data of Muennighoff et al. (2023) for U unique tokens repeated
// over R_D = D/U - 1 extra epochs:
//
//	D' = U + U·R_D*·(1 - exp(-R_D/R_D*))
//
// so repeated tokens are worth less and less. A weight decay away from its
// optimum multiplies the loss by 1 + c·ln²(wd/wd*), where the optimum grows
// with the number of epochs (wd* = wd_opt·epochs^wd_epoch_exp): repeated
// data wants more regularisation. Noise is multiplicative and log-normal,
// drawn from the trial's seed and parameters, so a trial is deterministic.
package synthetic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"asymptote.dev/asymptote/plugins/methods/internal/params"
	"asymptote.dev/asymptote/plugins/sdk"
)

// Method is the synthetic method. The zero value is ready to use.
type Method struct{}

var _ sdk.Method = Method{}

// New returns the synthetic method.
func New() Method { return Method{} }

// Version is the method's version; bump it when the law changes, since it
// is part of every trial's identity.
const Version = "1"

var paramInfo = []sdk.ParamInfo{
	{Name: "params", Type: "float", Default: 1e8, Description: "model parameters N"},
	{Name: "tokens", Type: "float", Default: nil, Description: "training tokens D (default unique_tokens × epochs, else 20·N)", Optional: true},
	{Name: "unique_tokens", Type: "float", Default: nil, Description: "distinct tokens U in the data pool (default D / epochs)", Optional: true},
	{Name: "epochs", Type: "float", Default: nil, Description: "passes over the unique tokens, D/U (default 1)", Optional: true},
	{Name: "E", Type: "float", Default: 1.69, Description: "irreducible loss"},
	{Name: "A", Type: "float", Default: 406.4, Description: "parameter term coefficient"},
	{Name: "B", Type: "float", Default: 410.7, Description: "data term coefficient"},
	{Name: "alpha", Type: "float", Default: 0.34, Description: "parameter exponent"},
	{Name: "beta", Type: "float", Default: 0.28, Description: "data exponent"},
	{Name: "rd_star", Type: "float", Default: 15.4, Description: "R_D*: repeated epochs at which repeated data's value has decayed by 1/e"},
	{Name: "weight_decay", Type: "float", Default: nil, Description: "weight decay; absent means tuned to its optimum", Optional: true},
	{Name: "wd_opt", Type: "float", Default: 0.1, Description: "optimal weight decay at one epoch"},
	{Name: "wd_epoch_exp", Type: "float", Default: 0.5, Description: "exponent of the optimum's growth with epochs"},
	{Name: "wd_penalty", Type: "float", Default: 0.02, Description: "loss penalty per squared log-distance from the optimal weight decay"},
	{Name: "overfit", Type: "float", Default: 0.05, Description: "train loss sits this fraction below val loss as epochs grow"},
	{Name: "noise", Type: "float", Default: 0.0, Description: "standard deviation of the log-normal multiplicative noise"},
	{Name: "steps", Type: "int", Default: 0.0, Description: "report a learning curve of this many steps (0: only the result)"},
	{Name: "step_tokens", Type: "float", Default: nil, Optional: true, Description: "tokens per step, instead of steps (steps = tokens / step_tokens, rounded up): a run of more tokens may then continue this one's checkpoints, as successive halving with continue does"},
	{Name: "sleep", Type: "float", Default: 0.0, Description: "seconds to take, spread over the steps"},
	{Name: "checkpoint_every", Type: "int", Default: 0.0, Description: "save a checkpoint every this many steps (0: only when the host asks for one)"},
}

// Info describes the method.
func (Method) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name:        "synthetic",
		Version:     Version,
		Description: "simulated training: a loss drawn from a data-constrained Chinchilla law with noise",
		Params:      paramInfo,
	}, nil
}

// Law is a parsed set of the method's parameters.
type Law struct {
	N, D, U, Epochs              float64
	E, A, B, Alpha, Beta, RDStar float64
	WeightDecay                  float64 // NaN when absent
	WDOpt, WDEpochExp, WDPenalty float64
	Overfit, Noise               float64
	Steps                        int64
	// StepTokens is the tokens per step when the trial gives step_tokens
	// (0 otherwise).
	StepTokens float64
	Sleep      time.Duration
	// CheckpointEvery is the period of checkpoints, in steps (0: only
	// when the host asks).
	CheckpointEvery int64
}

// Parse reads and checks the trial's parameters; a parameter the method
// does not take is an error, so a misspelt one does not silently run with
// its default.
func Parse(req *sdk.TrialRequest) (*Law, error) {
	if err := params.Unknown(req, paramInfo); err != nil {
		return nil, err
	}
	var l Law
	var errs []error
	f := func(name string, def float64) float64 {
		v, err := req.Float(name, def)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	l.N = f("params", 1e8)
	l.D = f("tokens", math.NaN())
	l.U = f("unique_tokens", math.NaN())
	l.Epochs = f("epochs", math.NaN())
	l.E, l.A, l.B = f("E", 1.69), f("A", 406.4), f("B", 410.7)
	l.Alpha, l.Beta, l.RDStar = f("alpha", 0.34), f("beta", 0.28), f("rd_star", 15.4)
	l.WeightDecay = f("weight_decay", math.NaN())
	l.WDOpt, l.WDEpochExp, l.WDPenalty = f("wd_opt", 0.1), f("wd_epoch_exp", 0.5), f("wd_penalty", 0.02)
	l.Overfit, l.Noise = f("overfit", 0.05), f("noise", 0)
	steps, err := req.Int("steps", 0)
	if err != nil {
		errs = append(errs, err)
	}
	l.Steps = steps
	l.StepTokens = f("step_tokens", 0)
	every, err := req.Int("checkpoint_every", 0)
	if err != nil {
		errs = append(errs, err)
	}
	l.CheckpointEvery = every
	l.Sleep = time.Duration(f("sleep", 0) * float64(time.Second))
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if !(l.N > 0) {
		return nil, &sdk.ParamError{Param: "params", Reason: "must be positive"}
	}
	if err := l.resolveData(); err != nil {
		return nil, err
	}
	if req.Params["step_tokens"] != nil {
		switch {
		case req.Params["steps"] != nil:
			return nil, &sdk.ParamError{Param: "step_tokens", Reason: "give steps or step_tokens, not both"}
		case !(l.StepTokens > 0):
			return nil, &sdk.ParamError{Param: "step_tokens", Reason: "must be positive"}
		case l.D/l.StepTokens > 1e6:
			return nil, &sdk.ParamError{Param: "step_tokens", Reason: fmt.Sprintf("makes %.0f steps of %g tokens; at most 1e6", math.Ceil(l.D/l.StepTokens), l.D)}
		}
		l.Steps = int64(math.Ceil(l.D/l.StepTokens - 1e-9))
	}
	checks := []struct {
		name string
		ok   bool
		want string
	}{
		{"alpha", l.Alpha > 0, "must be positive"},
		{"beta", l.Beta > 0, "must be positive"},
		{"rd_star", l.RDStar > 0, "must be positive"},
		{"noise", l.Noise >= 0, "must not be negative"},
		{"steps", l.Steps >= 0 && l.Steps <= 1e6, "must be between 0 and 1e6"},
		{"sleep", l.Sleep >= 0, "must not be negative"},
		{"checkpoint_every", l.CheckpointEvery >= 0, "must not be negative (0 checkpoints only when the host asks)"},
		{"weight_decay", math.IsNaN(l.WeightDecay) || l.WeightDecay >= 0, "must not be negative"},
		{"wd_opt", l.WDOpt > 0, "must be positive"},
	}
	for _, c := range checks {
		if !c.ok {
			return nil, &sdk.ParamError{Param: c.name, Reason: c.want}
		}
	}
	return &l, nil
}

// resolveData fills in whichever of D, U and epochs are missing.
func (l *Law) resolveData() error {
	has := func(v float64) bool { return !math.IsNaN(v) }
	switch {
	case has(l.D) && has(l.U) && has(l.Epochs):
		if math.Abs(l.U*l.Epochs-l.D) > 1e-9*l.D {
			return &sdk.ParamError{Param: "tokens", Reason: "differs from unique_tokens × epochs; give two of the three"}
		}
	case has(l.D) && has(l.U):
		l.Epochs = l.D / l.U
	case has(l.D) && has(l.Epochs):
		l.U = l.D / l.Epochs
	case has(l.U) && has(l.Epochs):
		l.D = l.U * l.Epochs
	case has(l.D):
		l.U, l.Epochs = l.D, 1
	case has(l.U):
		l.D, l.Epochs = l.U, 1
	default:
		if !has(l.Epochs) {
			l.Epochs = 1
		}
		l.D = 20 * l.N
		l.U = l.D / l.Epochs
	}
	switch {
	case !(l.D > 0):
		return &sdk.ParamError{Param: "tokens", Reason: "must be positive"}
	case !(l.U > 0):
		return &sdk.ParamError{Param: "unique_tokens", Reason: "must be positive"}
	case l.Epochs < 1-1e-9:
		return &sdk.ParamError{Param: "epochs", Reason: "must be at least 1 (tokens cannot be fewer than unique_tokens)"}
	}
	return nil
}

// EffectiveTokens returns D' for having trained on d tokens drawn from the
// pool of U unique ones.
func (l *Law) EffectiveTokens(d float64) float64 {
	if d <= l.U {
		return d
	}
	rd := d/l.U - 1
	return l.U + l.U*l.RDStar*(1-math.Exp(-rd/l.RDStar))
}

// Loss returns the noiseless validation loss after d tokens.
func (l *Law) Loss(d float64) float64 {
	loss := l.E + l.A/math.Pow(l.N, l.Alpha) + l.B/math.Pow(l.EffectiveTokens(d), l.Beta)
	if !math.IsNaN(l.WeightDecay) {
		epochs := max(d/l.U, 1)
		opt := l.WDOpt * math.Pow(epochs, l.WDEpochExp)
		const floor = 1e-4 // so weight_decay = 0 is finite
		dist := math.Log((l.WeightDecay + floor) / (opt + floor))
		loss *= 1 + l.WDPenalty*dist*dist
	}
	return loss
}

// trainLoss returns the train loss for val loss v after d tokens.
func (l *Law) trainLoss(v, d float64) float64 {
	epochs := max(d/l.U, 1)
	return v * (1 - l.Overfit*(1-1/epochs))
}

// Run draws the trial's loss, reporting a learning curve first when steps
// is set.
func (Method) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	l, err := Parse(req)
	if err != nil {
		return nil, err
	}
	src := rand.NewPCG(uint64(req.Seed), paramsHash(req.Params))
	rng := rand.New(src)
	trialNoise := math.Exp(l.Noise * rng.NormFloat64())
	first := int64(1)
	if req.Resume != nil {
		// The checkpoint holds the step and the generator's state after
		// it, so the resumed curve and result are the uninterrupted ones.
		step, err := l.restore(req.Resume.Dir, src, rng)
		if err != nil {
			return nil, err
		}
		first = step + 1
	}

	pause := func(d time.Duration) error {
		if d <= 0 {
			return ctx.Err()
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if l.Steps == 0 {
		if err := pause(l.Sleep); err != nil {
			return nil, err
		}
	}
	for s := first; s <= l.Steps; s++ {
		if err := pause(l.Sleep / time.Duration(l.Steps)); err != nil {
			return nil, err
		}
		d := l.tokensAt(s)
		// Per-step noise is smaller and independent; the final step
		// carries the trial's noise alone, so it matches the result.
		stepNoise := trialNoise
		if s < l.Steps {
			stepNoise *= math.Exp(0.5 * l.Noise * rng.NormFloat64())
		}
		v := l.Loss(d) * stepNoise
		m := sdk.Metrics{Step: s, Values: map[string]float64{
			sdk.MetricValLoss:   v,
			sdk.MetricTrainLoss: l.trainLoss(v, d),
			sdk.MetricTokens:    d,
			sdk.MetricFLOPs:     6 * l.N * d,
		}}
		periodic := l.CheckpointEvery > 0 && s%l.CheckpointEvery == 0
		// A run that may be continued saves one after its last step
		// too, for the promotion that continues it.
		if s < l.Steps && (req.CheckpointWanted() || periodic) || s == l.Steps && periodic && l.StepTokens > 0 {
			dir, err := l.save(req, s, src)
			if err != nil {
				return nil, err
			}
			m.Checkpoint = dir
		}
		if err := report(m); err != nil {
			return nil, err
		}
	}
	v := l.Loss(l.D) * trialNoise
	return &sdk.Result{Metrics: map[string]float64{
		sdk.MetricValLoss:      v,
		sdk.MetricTrainLoss:    l.trainLoss(v, l.D),
		sdk.MetricParams:       l.N,
		sdk.MetricTokens:       l.D,
		sdk.MetricUniqueTokens: l.U,
		sdk.MetricEpochs:       l.Epochs,
		sdk.MetricFLOPs:        6 * l.N * l.D,
		"effective_tokens":     l.EffectiveTokens(l.D),
	}}, nil
}

// paramsHash hashes the parameters canonically (encoding/json sorts map
// keys), so different parameters under one seed draw different noise.
func paramsHash(p map[string]any) uint64 {
	b, err := json.Marshal(p)
	if err != nil {
		b = fmt.Appendf(nil, "%v", p)
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}

// tokensAt returns the tokens trained on after step s.
func (l *Law) tokensAt(s int64) float64 {
	if l.StepTokens > 0 {
		return min(float64(s)*l.StepTokens, l.D)
	}
	return l.D * float64(s) / float64(l.Steps)
}

// state is what a checkpoint of the synthetic method holds.
type state struct {
	Step int64  `json:"step"`
	RNG  []byte `json:"rng"` // the PCG generator's state after Step
	// Tokens and StepTokens are the run's: a run of more tokens with the
	// same StepTokens may continue it.
	Tokens     float64 `json:"tokens,omitempty"`
	StepTokens float64 `json:"step_tokens,omitempty"`
}

const stateFile = "state.json"

// save writes a checkpoint after step, or returns "" when the host keeps
// none.
func (l *Law) save(req *sdk.TrialRequest, step int64, src *rand.PCG) (string, error) {
	dir, err := req.NewCheckpoint(step)
	if errors.Is(err, sdk.ErrNoCheckpoints) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	b, err := src.MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	data, err := json.Marshal(state{Step: step, RNG: b, Tokens: l.D, StepTokens: l.StepTokens})
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateFile), data, 0o600); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	return dir, nil
}

// restore reads a checkpoint into src and returns its step. A checkpoint
// of a run of fewer tokens (a promotion continuing it) leaves the
// generator this trial's own, drawn on past the steps it skips, so the
// curve and result are this trial's uninterrupted ones.
func (l *Law) restore(dir string, src *rand.PCG, rng *rand.Rand) (int64, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return 0, fmt.Errorf("resume: %s is not a synthetic checkpoint: %w", stateFile, err)
	}
	if st.Tokens != 0 && st.Tokens != l.D {
		switch {
		case l.StepTokens == 0 || st.StepTokens != l.StepTokens:
			return 0, fmt.Errorf("resume: the checkpoint is of a run of %g tokens, this one has %g; a run continues another only with the same step_tokens (it has %g, this one %g)", st.Tokens, l.D, st.StepTokens, l.StepTokens)
		case st.Step >= l.Steps:
			return 0, fmt.Errorf("resume: the checkpoint is after step %d, past this run's %d steps: only a longer run continues a shorter one", st.Step, l.Steps)
		}
		for s := int64(1); s <= st.Step; s++ {
			rng.NormFloat64() // the step's noise, as the uninterrupted run draws it
		}
		return st.Step, nil
	}
	if err := src.UnmarshalBinary(st.RNG); err != nil {
		return 0, fmt.Errorf("resume: generator state: %w", err)
	}
	return st.Step, nil
}
