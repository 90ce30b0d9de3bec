package nn

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"asymptote.dev/asymptote/plugins/sdk"
)

func TestEpochsVisitEveryIndexOncePerEpoch(t *testing.T) {
	e := NewEpochs(7, rand.New(rand.NewPCG(1, 1)))
	var got []int32
	for range 5 {
		got = append(got, e.Next(nil, 4)...) // 20 = two epochs and 6
	}
	for ep := range 2 {
		s := slices.Sorted(slices.Values(got[ep*7 : ep*7+7]))
		if !slices.Equal(s, []int32{0, 1, 2, 3, 4, 5, 6}) {
			t.Errorf("epoch %d: %v", ep, got[ep*7:ep*7+7])
		}
	}
	if slices.Equal(got[:7], got[7:14]) {
		t.Error("two epochs in the same order")
	}
}

func TestLoopReportsAndStops(t *testing.T) {
	var reports []sdk.Metrics
	evals := 0
	l := Loop{
		Steps: 10, Every: 4, Members: 2,
		Step: func(i int) (float64, int) { return float64(2 * i), 2 },
		Eval: func(context.Context) (map[string]float64, error) {
			evals++
			return map[string]float64{"val_loss": float64(evals)}, nil
		},
	}
	last, err := l.Run(t.Context(), func(m sdk.Metrics) error { reports = append(reports, m); return nil })
	if err != nil {
		t.Fatal(err)
	}
	steps := []int64{}
	for _, r := range reports {
		steps = append(steps, r.Step)
	}
	if !slices.Equal(steps, []int64{4, 8, 10}) || last["val_loss"] != 3 || last[sdk.MetricTrainLoss] != 8.5 {
		t.Fatalf("reports at %v, last %v", steps, last)
	}
	// Steps 4 and 5 (0-based 8, 9): losses 16+18 over 4 examples; 10 examples per member.
	if r := reports[2].Values; r[sdk.MetricTrainLoss] != 8.5 || r[sdk.MetricTokens] != 10 {
		t.Errorf("last report %v", r)
	}

	ctx, cancel := context.WithCancel(t.Context())
	l.Step = func(i int) (float64, int) {
		if i == 2 {
			cancel()
		}
		return 0, 1
	}
	if _, err := l.Run(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
	boom := errors.New("boom")
	l.Step = func(int) (float64, int) { return 0, 1 }
	if _, err := l.Run(t.Context(), func(sdk.Metrics) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("failed report: %v", err)
	}
}
