// Command method-go is an example asymptote method in a module of its own,
// built only on asymptote's plugin SDK: it fits y = w·x + b to noisy
// synthetic data by stochastic gradient descent and reports the loss as it
// trains.
//
// Build it, put the binary in the agent's plugin directory and add its
// SHA-256 to the agent's method allowlist:
//
//	go build -o /var/lib/asymptote/methods/sgd-line .
//	sha256sum /var/lib/asymptote/methods/sgd-line
package main

import (
	"context"
	"math/rand/v2"

	"asymptote.dev/asymptote/plugins/sdk"
)

func main() {
	sdk.Serve(method{})
}

// method implements sdk.Method.
type method struct{}

func (method) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name:        "sgd-line",
		Version:     "1",
		Description: "fits a line to noisy data by SGD (an example external method)",
		Params: []sdk.ParamInfo{
			{Name: "lr", Type: "float", Default: 0.05, Description: "learning rate"},
			{Name: "steps", Type: "int", Default: 200.0, Description: "SGD steps"},
			{Name: "samples", Type: "int", Default: 1000.0, Description: "training set size"},
			{Name: "noise", Type: "float", Default: 0.1, Description: "label noise standard deviation"},
		},
	}, nil
}

func (method) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	lr, err := req.Float("lr", 0.05)
	if err != nil {
		return nil, err
	}
	steps, err := req.Int("steps", 200)
	if err != nil {
		return nil, err
	}
	n, err := req.Int("samples", 1000)
	if err != nil {
		return nil, err
	}
	noise, err := req.Float("noise", 0.1)
	if err != nil {
		return nil, err
	}
	if lr <= 0 {
		return nil, &sdk.ParamError{Param: "lr", Reason: "must be positive"}
	}
	if n < 2 {
		return nil, &sdk.ParamError{Param: "samples", Reason: "must be at least 2"}
	}

	// Deterministic for the seed, as the SDK requires.
	rng := rand.New(rand.NewPCG(uint64(req.Seed), 1))
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range xs {
		xs[i] = rng.Float64()*2 - 1
		ys[i] = 3*xs[i] + 0.5 + noise*rng.NormFloat64()
	}
	mse := func(w, b float64) float64 {
		s := 0.0
		for i, x := range xs {
			d := w*x + b - ys[i]
			s += d * d
		}
		return s / float64(len(xs))
	}

	log := sdk.Logger().With("trial_id", req.TrialID, "attempt", req.Attempt)
	log.Info("training", "lr", lr, "steps", steps)
	var w, b float64
	for step := int64(1); step <= steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		i := rng.IntN(len(xs))
		d := w*xs[i] + b - ys[i]
		w -= lr * 2 * d * xs[i]
		b -= lr * 2 * d
		if step%50 == 0 || step == steps {
			if err := report(sdk.Metrics{Step: step, Values: map[string]float64{sdk.MetricTrainLoss: mse(w, b)}}); err != nil {
				return nil, err
			}
		}
	}
	loss := mse(w, b)
	log.Info("done", "train_loss", loss)
	return &sdk.Result{Metrics: map[string]float64{
		sdk.MetricTrainLoss: loss,
		sdk.MetricValLoss:   loss,
		sdk.MetricParams:    2,
		sdk.MetricTokens:    float64(steps),
		"w":                 w,
		"b":                 b,
	}}, nil
}
