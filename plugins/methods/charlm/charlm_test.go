package charlm

import (
	"context"
	"errors"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/plugins/methods/corpus"
	"asymptote.dev/asymptote/plugins/methods/internal/methodtest"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/plugins/sdk/sdktest"
)

// small is a trial that trains in well under a second.
func small() map[string]any {
	return map[string]any{
		"width": 32.0, "context": 4.0, "embed": 8.0, "unique_tokens": 20000.0,
		"tokens": 12800.0, "batch": 64.0, "eval_tokens": 2000.0, "report_every": 50.0,
	}
}

func run(t *testing.T, ctx context.Context, p map[string]any, seed int64, threads int) (*sdk.Result, []sdk.Metrics, error) {
	t.Helper()
	return methodtest.Run(ctx, New(), p, seed, threads)
}

func TestTrainingLowersLoss(t *testing.T) {
	methodtest.RequireKJV(t)
	res, reports, err := run(t, t.Context(), small(), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 4 {
		t.Fatalf("got %d reports, want 4 (200 steps, every 50)", len(reports))
	}
	first, last := reports[0].Values[sdk.MetricValLoss], reports[len(reports)-1].Values[sdk.MetricValLoss]
	if !(last < first) || last > 3.0 {
		t.Errorf("val_loss went %.3f → %.3f, want it to fall below 3 nats (uniform is %.2f)", first, last, math.Log(73))
	}
	m := res.Metrics
	// 73 symbols × 8 + (32·8 + 1)·... : embedding + hidden + output layer.
	wantParams := 73*8 + (4*8*32 + 32) + (32*73 + 73)
	want := map[string]float64{
		sdk.MetricParams: float64(wantParams), sdk.MetricTokens: 12800, sdk.MetricUniqueTokens: 20000,
		sdk.MetricEpochs: 0.64, sdk.MetricMembers: 1, sdk.MetricFLOPs: 6 * (4*8*32 + 32*73) * 12800,
		sdk.MetricValLoss: last, sdk.MetricTrainLoss: reports[len(reports)-1].Values[sdk.MetricTrainLoss],
	}
	if !maps.Equal(m, want) {
		t.Errorf("result %v, want %v", m, want)
	}
}

func TestSameSeedSameResultAnyThreads(t *testing.T) {
	methodtest.RequireKJV(t)
	p := small()
	p["tokens"], p["dropout"], p["members"], p["depth"] = 3200.0, 0.2, 2.0, 2.0
	p["width"] = 200.0 // several tiles, so two threads really split the work
	a, _, err := run(t, t.Context(), p, 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := run(t, t.Context(), p, 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(a.Metrics, b.Metrics) {
		t.Errorf("same seed, 1 vs 2 threads: %v vs %v", a.Metrics, b.Metrics)
	}
	c, _, err := run(t, t.Context(), p, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics[sdk.MetricValLoss] == a.Metrics[sdk.MetricValLoss] {
		t.Errorf("seeds 7 and 8 gave the same val_loss %v", a.Metrics[sdk.MetricValLoss])
	}
}

func TestEpochsSetTokens(t *testing.T) {
	methodtest.RequireKJV(t)
	p := small()
	delete(p, "tokens")
	p["epochs"], p["unique_tokens"] = 0.5, 6400.0
	res, _, err := run(t, t.Context(), p, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Metrics[sdk.MetricTokens]; got != 3200 {
		t.Errorf("tokens = %v, want 3200", got)
	}
}

func TestCancellationStopsPromptly(t *testing.T) {
	methodtest.RequireKJV(t)
	p := small()
	p["tokens"], p["width"] = 1e9, 512.0
	methodtest.StopsPromptly(t, 200*time.Millisecond, func(ctx context.Context) error {
		_, _, err := run(t, ctx, p, 1, 1)
		return err
	})
}

func TestBadParamsAreParamErrors(t *testing.T) {
	methodtest.RequireKJV(t)
	tests := []struct {
		param string
		value any
	}{
		{"width", 0.0},
		{"width", 1.5},
		{"depth", 9.0},
		{"context", 65.0},
		{"lr", 0.0},
		{"dropout", 1.0},
		{"weight_decay", -1.0},
		{"unique_tokens", 1e9},
		{"members", 0.0},
		{"eval_tokens", 10.0},
		{"batch", "big"},
		{"epochs", 2.0}, // with tokens also set
		{"widht", 3.0},
	}
	for _, tc := range tests {
		t.Run(tc.param, func(t *testing.T) {
			p := small()
			p[tc.param] = tc.value
			_, _, err := run(t, t.Context(), p, 1, 1)
			var pe *sdk.ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want *sdk.ParamError", err)
			}
			if pe.Param != tc.param {
				t.Errorf("error names %q, want %q: %v", pe.Param, tc.param, err)
			}
		})
	}
}

func TestMissingDataNamesInstallScript(t *testing.T) {
	m := &Method{DataDirs: []string{t.TempDir()}}
	_, err := m.Run(t.Context(), &sdk.TrialRequest{Params: small(), Threads: 1}, nil)
	methodtest.NamesInstallScript(t, err)
}

func mustText(tb testing.TB) *corpus.Text {
	tb.Helper()
	text, err := corpus.LoadKJV(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return text
}

// TestConformance runs the SDK's contract checks over the gRPC transport
// the agent uses: Info, cancellation, deadlines and ParamError.
func TestConformance(t *testing.T) {
	methodtest.RequireKJV(t)
	sdktest.Conformance(t, New(), sdktest.Cases{
		Long:    &sdk.TrialRequest{Params: map[string]any{"tokens": 1e9, "width": 256.0}},
		Invalid: &sdk.TrialRequest{Params: map[string]any{"width": 0.0}},
	})
}

// resumable is small() with dropout and two members, so a checkpoint must
// carry every member's generator, data order and optimizer to resume bit
// for bit; checkpoints fall both on reports (every 50) and between them.
func resumable() map[string]any {
	p := small()
	p["dropout"], p["members"], p["checkpoint_every"] = 0.2, 2.0, 30.0
	return p
}

// TestCheckpoints checks that charlm resumes bit for bit from its
// checkpoints, saves one when asked, refuses one of another model, and
// that checkpoint_every changes no result, so a study may turn
// checkpoints on without changing its results.
func TestCheckpoints(t *testing.T) {
	methodtest.RequireKJV(t)
	methodtest.Checkpoints(t, New(), methodtest.CheckpointCase{
		Params: resumable(), ReportEvery: 50,
		Saved:  6, // after steps 30, 60, …, 180 of 200
		Others: map[string]any{"width": 16.0, "members": 1.0, "tokens": 6400.0},
	})
}

// TestContinues checks that under the constant schedule a run of more
// tokens continues a shorter run's last checkpoint to the uninterrupted
// result, and that under cosine, whose decay depends on the budget, it
// refuses to.
func TestContinues(t *testing.T) {
	methodtest.RequireKJV(t)
	p := small()
	p["schedule"], p["checkpoint_every"], p["dropout"] = "constant", 50.0, 0.1
	t.Run("constant", func(t *testing.T) {
		methodtest.Continues(t, New(), p, "tokens", 6400, 19200, sdk.MetricValLoss, sdk.MetricTokens, sdk.MetricFLOPs)
	})
	t.Run("cosine", func(t *testing.T) {
		c := maps.Clone(p)
		c["schedule"] = "cosine"
		methodtest.ResumeRefuses(t, New(), c, map[string]any{"tokens": 19200.0}, "schedule: constant")
	})
	t.Run("partial batch", func(t *testing.T) {
		c := maps.Clone(p)
		c["tokens"], c["checkpoint_every"] = 6400.0-32, 20.0 // 99 full steps and one of 32
		req := (&sdk.TrialRequest{Params: c, Seed: 3, Attempt: 1, Threads: 1}).WithCheckpointRoot(t.TempDir())
		var last sdk.Metrics
		if _, err := New().Run(t.Context(), req, func(x sdk.Metrics) error {
			if x.Checkpoint != "" {
				last = x
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if last.Step != 100 {
			t.Fatalf("last checkpoint after step %d, want 100 (the last)", last.Step)
		}
		c["tokens"] = 19200.0
		next := (&sdk.TrialRequest{Params: c, Seed: 3, Attempt: 1, Threads: 1}).WithCheckpointRoot(t.TempDir())
		next.Resume = &sdk.Checkpoint{Step: last.Step, Dir: last.Checkpoint}
		_, err := New().Run(t.Context(), next, func(sdk.Metrics) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "partial batch") {
			t.Errorf("continuing after a partial last batch: %v, want an error naming the partial batch", err)
		}
	})
}
