package imgmlp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"asymptote.dev/asymptote/plugins/methods/corpus"
	"asymptote.dev/asymptote/plugins/methods/internal/methodtest"
	"asymptote.dev/asymptote/plugins/methods/internal/nn"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/plugins/sdk/sdktest"
)

// small is a trial that trains in a fraction of a second.
func small() map[string]any {
	return map[string]any{
		"width": 32.0, "train_size": 2000.0, "epochs": 1.0, "batch": 50.0,
		"val_size": 1000.0, "report_every": 10.0, "lr": 3e-3,
	}
}

func run(t *testing.T, ctx context.Context, p map[string]any, seed int64, threads int) (*sdk.Result, []sdk.Metrics, error) {
	t.Helper()
	return methodtest.Run(ctx, New(), p, seed, threads)
}

func TestTrainingLowersLossAndClassifies(t *testing.T) {
	methodtest.RequireFashion(t)
	res, reports, err := run(t, t.Context(), small(), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 4 {
		t.Fatalf("got %d reports, want 4 (40 steps, every 10)", len(reports))
	}
	first, last := reports[0].Values[sdk.MetricValLoss], reports[len(reports)-1].Values[sdk.MetricValLoss]
	if !(last < first) {
		t.Errorf("val_loss went %.3f → %.3f, want it to fall", first, last)
	}
	if acc := res.Metrics[MetricValAccuracy]; acc < 0.7 {
		t.Errorf("val_accuracy %.3f after one epoch of 2000 images, want ≥ 0.7", acc)
	}
	wantParams := 784*32 + 32 + 32*10 + 10
	for k, want := range map[string]float64{
		sdk.MetricParams: float64(wantParams), sdk.MetricTokens: 2000, sdk.MetricUniqueTokens: 2000,
		sdk.MetricEpochs: 1, sdk.MetricMembers: 1, sdk.MetricFLOPs: 6 * (784*32 + 32*10) * 2000,
	} {
		if got := res.Metrics[k]; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
}

func TestSameSeedSameResultAnyThreads(t *testing.T) {
	methodtest.RequireFashion(t)
	p := small()
	p["members"], p["dropout"], p["label_noise"], p["width"], p["train_size"] = 2.0, 0.3, 0.2, 200.0, 500.0
	a, _, err := run(t, t.Context(), p, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := run(t, t.Context(), p, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(a.Metrics, b.Metrics) {
		t.Errorf("same seed, 1 vs 2 threads: %v vs %v", a.Metrics, b.Metrics)
	}
	c, _, err := run(t, t.Context(), p, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics[sdk.MetricValLoss] == a.Metrics[sdk.MetricValLoss] {
		t.Error("seeds 3 and 4 gave the same val_loss")
	}
}

func TestLabelNoiseFlipsTheShareAsked(t *testing.T) {
	methodtest.RequireFashion(t)
	train, test, err := corpus.LoadFashionMNIST(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, noise := range []float64{0, 0.3, 0.8} {
		p := small()
		p["label_noise"], p["train_size"] = noise, 20000.0
		c, err := parse(&sdk.TrialRequest{Params: p}, train, test)
		if err != nil {
			t.Fatal(err)
		}
		tr := newTrainer(c, train, test, 9, nn.Pool{})
		flipped := 0
		for i, y := range tr.labels {
			if y != int32(train.Labels[i]) {
				flipped++
			}
			if y < 0 || y >= classes {
				t.Fatalf("label %d", y)
			}
		}
		if share := float64(flipped) / 20000; share < noise-0.02 || share > noise+0.02 {
			t.Errorf("label_noise %v flipped %.3f of labels", noise, share)
		}
	}
}

func TestCancellationStopsPromptly(t *testing.T) {
	methodtest.RequireFashion(t)
	p := small()
	p["epochs"], p["width"] = 1000.0, 512.0
	methodtest.StopsPromptly(t, 200*time.Millisecond, func(ctx context.Context) error {
		_, _, err := run(t, ctx, p, 1, 1)
		return err
	})
}

func TestBadParamsAreParamErrors(t *testing.T) {
	methodtest.RequireFashion(t)
	tests := []struct {
		param string
		value any
	}{
		{"width", 0.0},
		{"depth", 0.0},
		{"label_noise", 0.95},
		{"dropout", -0.1},
		{"train_size", 70000.0},
		{"val_size", 20000.0},
		{"epochs", 0.0},
		{"epochs", 0.001}, // under one batch
		{"members", 65.0},
		{"hidden", 64.0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.param, "=", tc.value), func(t *testing.T) {
			p := small()
			p[tc.param] = tc.value
			_, _, err := run(t, t.Context(), p, 1, 1)
			var pe *sdk.ParamError
			if !errors.As(err, &pe) || pe.Param != tc.param {
				t.Errorf("got %v, want a ParamError for %q", err, tc.param)
			}
		})
	}
}

func TestMissingDataNamesInstallScript(t *testing.T) {
	m := &Method{DataDirs: []string{t.TempDir()}}
	_, err := m.Run(t.Context(), &sdk.TrialRequest{Params: small(), Threads: 1}, nil)
	methodtest.NamesInstallScript(t, err)
}

// BenchmarkTrain measures training throughput (images per second, one
// member, evaluation excluded).
func BenchmarkTrain(b *testing.B) {
	methodtest.RequireFashion(b)
	train, test, err := corpus.LoadFashionMNIST(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ width, threads int }{{128, 1}, {128, 2}, {512, 1}} {
		b.Run(fmt.Sprintf("width=%d/threads=%d", bc.width, bc.threads), func(b *testing.B) {
			c, err := parse(&sdk.TrialRequest{Params: map[string]any{"width": float64(bc.width)}}, train, test)
			if err != nil {
				b.Fatal(err)
			}
			tr := newTrainer(c, train, test, 1, nn.Pool{Threads: bc.threads})
			for i := 0; b.Loop(); i++ {
				tr.step(i, 1<<30, c.batch)
			}
			b.ReportMetric(float64(b.N*c.batch)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// TestConformance runs the SDK's contract checks over the gRPC transport
// the agent uses: Info, cancellation, deadlines and ParamError.
func TestConformance(t *testing.T) {
	methodtest.RequireFashion(t)
	sdktest.Conformance(t, New(), sdktest.Cases{
		Long:    &sdk.TrialRequest{Params: map[string]any{"epochs": 1000.0, "width": 256.0}},
		Invalid: &sdk.TrialRequest{Params: map[string]any{"label_noise": 2.0}},
	})
}

// resumable is small() with dropout, label noise and two members, so a
// checkpoint must carry every member's generator, data order and
// optimizer to resume bit for bit; checkpoints fall both on reports
// (every 10) and between them.
func resumable() map[string]any {
	p := small()
	p["dropout"], p["label_noise"], p["members"], p["checkpoint_every"] = 0.2, 0.2, 2.0, 15.0
	return p
}

// TestCheckpoints checks that imgmlp resumes bit for bit from its
// checkpoints, saves one when asked, refuses one of another model, and
// that checkpoint_every changes no result.
func TestCheckpoints(t *testing.T) {
	methodtest.RequireFashion(t)
	methodtest.Checkpoints(t, New(), methodtest.CheckpointCase{
		Params: resumable(), ReportEvery: 10,
		Saved:  2, // after steps 15 and 30 of 40
		Others: map[string]any{"width": 16.0, "depth": 2.0, "train_size": 1000.0},
	})
}
