package synthetic

import (
	"context"
	"errors"
	"math"
	"testing"

	"asymptote.dev/asymptote/plugins/methods/internal/methodtest"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/plugins/sdk/sdktest"
)

func run(t *testing.T, params map[string]any, seed int64) *sdk.Result {
	t.Helper()
	res, err := New().Run(context.Background(), &sdk.TrialRequest{TrialID: "t", Attempt: 1, Params: params, Seed: seed},
		func(sdk.Metrics) error { return nil })
	if err != nil {
		t.Fatalf("Run(%v): %v", params, err)
	}
	return res
}

func TestChinchillaDefaults(t *testing.T) {
	// One epoch, no noise, weight decay at its optimum: exactly the law.
	res := run(t, map[string]any{"params": 1e9, "tokens": 2e10}, 1)
	want := 1.69 + 406.4/math.Pow(1e9, 0.34) + 410.7/math.Pow(2e10, 0.28)
	if got := res.Metrics[sdk.MetricValLoss]; math.Abs(got-want) > 1e-12 {
		t.Errorf("val_loss = %v, want %v", got, want)
	}
	for key, want := range map[string]float64{
		sdk.MetricParams: 1e9, sdk.MetricTokens: 2e10, sdk.MetricUniqueTokens: 2e10,
		sdk.MetricEpochs: 1, sdk.MetricFLOPs: 6 * 1e9 * 2e10,
	} {
		if got := res.Metrics[key]; got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
}

func TestDataResolution(t *testing.T) {
	tests := []struct {
		name         string
		params       map[string]any
		d, u, epochs float64
		wantParamErr string
	}{
		{name: "default 20 tokens per param", params: map[string]any{"params": 1e6}, d: 2e7, u: 2e7, epochs: 1},
		{name: "unique × epochs", params: map[string]any{"unique_tokens": 1e9, "epochs": 4.0}, d: 4e9, u: 1e9, epochs: 4},
		{name: "tokens and epochs", params: map[string]any{"tokens": 4e9, "epochs": 4.0}, d: 4e9, u: 1e9, epochs: 4},
		{name: "tokens and unique", params: map[string]any{"tokens": 4e9, "unique_tokens": 2e9}, d: 4e9, u: 2e9, epochs: 2},
		{name: "consistent three", params: map[string]any{"tokens": 4e9, "unique_tokens": 2e9, "epochs": 2.0}, d: 4e9, u: 2e9, epochs: 2},
		{name: "inconsistent three", params: map[string]any{"tokens": 4e9, "unique_tokens": 2e9, "epochs": 3.0}, wantParamErr: "tokens"},
		{name: "fewer tokens than unique", params: map[string]any{"tokens": 1e9, "unique_tokens": 2e9}, wantParamErr: "epochs"},
		{name: "negative params", params: map[string]any{"params": -1.0}, wantParamErr: "params"},
		{name: "string params", params: map[string]any{"params": "big"}, wantParamErr: "params"},
		{name: "fractional steps", params: map[string]any{"steps": 1.5}, wantParamErr: "steps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(&sdk.TrialRequest{Params: tt.params})
			if tt.wantParamErr != "" {
				var pe *sdk.ParamError
				if !errors.As(err, &pe) || pe.Param != tt.wantParamErr {
					t.Fatalf("Parse error = %v, want a ParamError for %q", err, tt.wantParamErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.D != tt.d || l.U != tt.u || l.Epochs != tt.epochs {
				t.Errorf("D, U, epochs = %v, %v, %v; want %v, %v, %v", l.D, l.U, l.Epochs, tt.d, tt.u, tt.epochs)
			}
		})
	}
}

func TestRepeatedDataIsWorthLess(t *testing.T) {
	loss := func(p map[string]any) float64 { return run(t, p, 1).Metrics[sdk.MetricValLoss] }
	fresh := loss(map[string]any{"params": 1e9, "tokens": 8e10})
	fourEpochs := loss(map[string]any{"params": 1e9, "unique_tokens": 2e10, "epochs": 4.0})
	oneEpoch := loss(map[string]any{"params": 1e9, "tokens": 2e10})
	if !(fresh < fourEpochs && fourEpochs < oneEpoch) {
		t.Errorf("losses fresh %v, 4 epochs %v, 1 epoch %v: want fresh < 4 epochs < 1 epoch", fresh, fourEpochs, oneEpoch)
	}
	// Muennighoff et al.: a few epochs are almost as good as fresh data.
	if rel := (fourEpochs - fresh) / fresh; rel > 0.01 {
		t.Errorf("4 epochs cost %.3f%% over fresh data, want under 1%%", 100*rel)
	}
	l, _ := Parse(&sdk.TrialRequest{Params: map[string]any{"unique_tokens": 1e9, "epochs": 1000.0}})
	if got, limit := l.EffectiveTokens(l.D), 1e9*(1+15.4); got > limit {
		t.Errorf("effective tokens %v exceed the limit U(1+R_D*) = %v", got, limit)
	}
}

func TestWeightDecayOptimumGrowsWithEpochs(t *testing.T) {
	best := func(epochs float64) float64 {
		bestWD, bestLoss := 0.0, math.Inf(1)
		for wd := 0.01; wd < 2; wd *= 1.05 {
			v := run(t, map[string]any{"unique_tokens": 1e9, "epochs": epochs, "weight_decay": wd}, 1).Metrics[sdk.MetricValLoss]
			if v < bestLoss {
				bestWD, bestLoss = wd, v
			}
		}
		return bestWD
	}
	if one, sixteen := best(1), best(16); !(sixteen > 2*one) {
		t.Errorf("best weight decay at 1 epoch %v, at 16 epochs %v: want it to grow", one, sixteen)
	}
}

func TestDeterministicNoise(t *testing.T) {
	p := map[string]any{"params": 1e8, "noise": 0.05}
	a, b := run(t, p, 42), run(t, p, 42)
	if a.Metrics[sdk.MetricValLoss] != b.Metrics[sdk.MetricValLoss] {
		t.Error("same params and seed gave different losses")
	}
	if c := run(t, p, 43); c.Metrics[sdk.MetricValLoss] == a.Metrics[sdk.MetricValLoss] {
		t.Error("another seed gave the same loss")
	}
	q := map[string]any{"params": 1e8, "noise": 0.05, "E": 1.690000001}
	if d := run(t, q, 42); math.Abs(d.Metrics[sdk.MetricValLoss]-a.Metrics[sdk.MetricValLoss]) < 1e-6 {
		t.Error("other params under the same seed drew the same noise")
	}
}

func TestLearningCurve(t *testing.T) {
	var reports []sdk.Metrics
	res, err := New().Run(context.Background(), &sdk.TrialRequest{Attempt: 1, Params: map[string]any{"steps": 10.0, "noise": 0.01}, Seed: 3},
		func(m sdk.Metrics) error { reports = append(reports, m); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 10 {
		t.Fatalf("got %d reports, want 10", len(reports))
	}
	if first, last := reports[0].Values[sdk.MetricValLoss], reports[9].Values[sdk.MetricValLoss]; !(first > last) {
		t.Errorf("loss went from %v to %v, want it to fall", first, last)
	}
	if got, want := reports[9].Values[sdk.MetricValLoss], res.Metrics[sdk.MetricValLoss]; got != want {
		t.Errorf("last step %v, result %v: want equal", got, want)
	}
}

func TestCancelledSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New().Run(ctx, &sdk.TrialRequest{Attempt: 1, Params: map[string]any{"sleep": 10.0}}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func BenchmarkRun(b *testing.B) {
	m := New()
	req := &sdk.TrialRequest{Attempt: 1, Params: map[string]any{"params": 1e8, "unique_tokens": 1e9, "epochs": 3.0, "noise": 0.02, "weight_decay": 0.1}}
	report := func(sdk.Metrics) error { return nil }
	for b.Loop() {
		if _, err := m.Run(context.Background(), req, report); err != nil {
			b.Fatal(err)
		}
	}
}

func TestResumeIsBitIdentical(t *testing.T) {
	n := sdktest.Resume(t, New(), sdktest.ResumeCase{Request: &sdk.TrialRequest{
		TrialID: "t", Attempt: 1, Seed: 7,
		Params: map[string]any{"params": 1e8, "steps": 50.0, "noise": 0.05, "checkpoint_every": 10.0},
	}})
	if n != 4 { // after steps 10, 20, 30 and 40; none after the last
		t.Errorf("saved %d checkpoints, want 4", n)
	}
}

func TestCheckpointWhenAsked(t *testing.T) {
	// No period: a checkpoint comes only when the host asks for one, and
	// exactly one per request.
	c := sdktest.Client(t, New())
	req := (&sdk.TrialRequest{TrialID: "t", Attempt: 1, Threads: 1,
		Params: map[string]any{"steps": 200.0, "sleep": 2.0}}).WithCheckpointRoot(t.TempDir())
	found := make(chan bool, 1)
	var saved []int64
	_, err := c.Run(t.Context(), req, func(m sdk.Metrics) error {
		if m.Step == 20 {
			go func() {
				ok, err := c.RequestCheckpoint(t.Context(), "t", 1, "test")
				if err != nil {
					t.Error(err)
				}
				found <- ok
			}()
		}
		if m.Checkpoint != "" {
			saved = append(saved, m.Step)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !<-found {
		t.Error("RequestCheckpoint did not find the running attempt")
	}
	if len(saved) != 1 || saved[0] <= 20 {
		t.Errorf("saved checkpoints at steps %v, want one after step 20", saved)
	}
	if ok, err := c.RequestCheckpoint(t.Context(), "t", 1, "test"); ok || err != nil {
		t.Errorf("RequestCheckpoint after the run = %v, %v; want false, nil", ok, err)
	}
}

// TestContinues checks that with step_tokens a run of more tokens
// continues a shorter run's last checkpoint to its uninterrupted result
// and curve, and that without it the checkpoint is refused.
func TestContinues(t *testing.T) {
	p := map[string]any{"params": 1e7, "step_tokens": 1e6, "checkpoint_every": 5.0, "noise": 0.05}
	methodtest.Continues(t, New(), p, "tokens", 2e7, 6e7, sdk.MetricValLoss, sdk.MetricTrainLoss, sdk.MetricFLOPs)

	q := map[string]any{"params": 1e7, "steps": 20.0, "checkpoint_every": 5.0, "tokens": 2e7}
	methodtest.ResumeRefuses(t, New(), q, map[string]any{"tokens": 6e7}, "same step_tokens")
}
