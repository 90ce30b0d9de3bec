package ngram

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"asymptote.dev/asymptote/plugins/methods/corpus"
	"asymptote.dev/asymptote/plugins/methods/internal/methodtest"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/plugins/sdk/sdktest"
)

func run(ctx context.Context, p map[string]any, threads int) (*sdk.Result, error) {
	return New().Run(ctx, &sdk.TrialRequest{Params: p, Seed: 1, Threads: threads}, nil)
}

func TestMoreDataLowersLoss(t *testing.T) {
	methodtest.RequireKJV(t)
	for _, smoothing := range []string{"wb", "kn"} {
		t.Run(smoothing, func(t *testing.T) {
			var prev float64
			for i, u := range []float64{2000, 20000, 200000} {
				res, err := run(t.Context(), map[string]any{"order": 4.0, "unique_tokens": u, "smoothing": smoothing, "eval_tokens": 4000.0}, 1)
				if err != nil {
					t.Fatal(err)
				}
				v := res.Metrics[sdk.MetricValLoss]
				if i > 0 && !(v < prev) {
					t.Errorf("unique_tokens %v: val_loss %.3f, not below %.3f", u, v, prev)
				}
				if res.Metrics[sdk.MetricTrainLoss] >= v {
					t.Errorf("unique_tokens %v: train_loss %.3f not below val_loss %.3f", u, res.Metrics[sdk.MetricTrainLoss], v)
				}
				prev = v
			}
			if prev > 1.8 {
				t.Errorf("4-gram on 200k characters: val_loss %.3f nats, want under 1.8", prev)
			}
		})
	}
}

func TestSameResultAnyThreads(t *testing.T) {
	methodtest.RequireKJV(t)
	p := map[string]any{"order": 6.0, "unique_tokens": 100000.0, "smoothing": "kn", "eval_tokens": 10000.0}
	a, err := run(t.Context(), p, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := run(t.Context(), p, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(a.Metrics, b.Metrics) {
		t.Errorf("1 vs 2 threads: %v vs %v", a.Metrics, b.Metrics)
	}
}

func TestCancellationStopsPromptly(t *testing.T) {
	methodtest.RequireKJV(t)
	methodtest.StopsPromptly(t, 100*time.Millisecond, func(ctx context.Context) error {
		_, err := run(ctx, map[string]any{"order": 9.0, "unique_tokens": 3868415.0}, 1)
		return err
	})
}

func TestBadParamsAreParamErrors(t *testing.T) {
	methodtest.RequireKJV(t)
	tests := []struct {
		name  string
		p     map[string]any
		param string
	}{
		{"order 0", map[string]any{"order": 0.0}, "order"},
		{"order 10", map[string]any{"order": 10.0}, "order"},
		{"tiny data", map[string]any{"unique_tokens": 10.0}, "unique_tokens"},
		{"smoothing", map[string]any{"smoothing": "good-turing"}, "smoothing"},
		{"discount with wb", map[string]any{"discount": 0.5}, "discount"},
		{"discount 1", map[string]any{"smoothing": "kn", "discount": 1.0}, "discount"},
		{"unknown", map[string]any{"width": 3.0}, "width"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t.Context(), tc.p, 1)
			var pe *sdk.ParamError
			if !errors.As(err, &pe) || pe.Param != tc.param {
				t.Errorf("got %v, want a ParamError for %q", err, tc.param)
			}
		})
	}
}

func TestMissingDataNamesInstallScript(t *testing.T) {
	m := &Method{DataDirs: []string{t.TempDir()}}
	_, err := m.Run(t.Context(), &sdk.TrialRequest{Params: map[string]any{}, Threads: 1}, nil)
	methodtest.NamesInstallScript(t, err)
}

// BenchmarkCount measures counting throughput (training characters per
// second) for a 5-gram on a million characters, scoring excluded.
func BenchmarkCount(b *testing.B) {
	methodtest.RequireKJV(b)
	text, err := corpus.LoadKJV(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, threads := range []int{1, 2} {
		b.Run(map[int]string{1: "threads=1", 2: "threads=2"}[threads], func(b *testing.B) {
			train := text.Train[:1000000]
			for b.Loop() {
				if _, err := build(b.Context(), train, 5, len(text.Vocab), false, 0, threads); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(train))/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// TestConformance runs the SDK's contract checks over the gRPC transport
// the agent uses: Info, cancellation, deadlines and ParamError.
func TestConformance(t *testing.T) {
	methodtest.RequireKJV(t)
	sdktest.Conformance(t, New(), sdktest.Cases{
		Long:    &sdk.TrialRequest{Params: map[string]any{"order": 9.0, "unique_tokens": 3869183.0}},
		Invalid: &sdk.TrialRequest{Params: map[string]any{"order": 0.0}},
	})
}
