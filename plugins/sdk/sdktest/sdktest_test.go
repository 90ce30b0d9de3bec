package sdktest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"asymptote.dev/asymptote/plugins/methods/faulty"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/plugins/sdk/sdktest"
)

func TestRun(t *testing.T) {
	res, reports, err := sdktest.Run(t, synthetic.New(), &sdk.TrialRequest{
		TrialID: "t", Params: map[string]any{"params": 1e7, "steps": 3.0}, Seed: 1,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(reports) != 3 {
		t.Errorf("got %d reports, want 3", len(reports))
	}
	if got, want := reports[2].Values[sdk.MetricValLoss], res.Metrics[sdk.MetricValLoss]; got != want {
		t.Errorf("last step's val_loss = %v, want the result's %v", got, want)
	}
}

func TestConformanceSynthetic(t *testing.T) {
	sdktest.Conformance(t, synthetic.New(), sdktest.Cases{
		Long:    &sdk.TrialRequest{TrialID: "long", Params: map[string]any{"steps": 100.0, "sleep": 30.0}},
		Invalid: &sdk.TrialRequest{TrialID: "bad", Params: map[string]any{"params": -1.0}},
	})
}

func TestConformanceFaulty(t *testing.T) {
	sdktest.Conformance(t, faulty.New(), sdktest.Cases{
		Long:    &sdk.TrialRequest{TrialID: "long", Params: map[string]any{"mode": "slow", "seconds": 30.0}},
		Invalid: &sdk.TrialRequest{TrialID: "bad", Params: map[string]any{"mode": "bad_param"}},
	})
}

// TestErrorsOverTheWire checks the error mapping from method to host for
// each kind of error a method returns.
func TestErrorsOverTheWire(t *testing.T) {
	tests := []struct {
		name string
		mode string
		is   error
	}{
		{name: "failure", mode: "fail"},
		{name: "panic", mode: "panic", is: sdk.ErrMethodPanicked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := sdktest.Run(t, faulty.New(), &sdk.TrialRequest{TrialID: "x", Params: map[string]any{"mode": tt.mode}})
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to match %v", err, tt.is)
			}
			for _, not := range []error{context.Canceled, context.DeadlineExceeded, sdk.ErrUnavailable} {
				if not != tt.is && errors.Is(err, not) {
					t.Errorf("err = %v matches %v", err, not)
				}
			}
		})
	}
}

func TestDeadlineTravels(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := sdktest.RunContext(ctx, t, faulty.New(), &sdk.TrialRequest{TrialID: "d", Params: map[string]any{"mode": "slow", "seconds": 10.0}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// clocked saves a checkpoint every 5 steps and reports a wall-clock figure
// that differs between any two runs, as a throughput does.
type clocked struct{ runs int }

func (c *clocked) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "clocked", Version: "1"}, nil
}

func (c *clocked) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	c.runs++
	first := int64(1)
	if req.Resume != nil {
		first = req.Resume.Step + 1
	}
	for s := first; s <= 20; s++ {
		m := sdk.Metrics{Step: s, Values: map[string]float64{"loss": 1 / float64(s), "per_second": float64(c.runs)}}
		if s%5 == 0 && s < 20 {
			dir, err := req.NewCheckpoint(s)
			if err != nil {
				return nil, err
			}
			m.Checkpoint = dir
		}
		if err := report(m); err != nil {
			return nil, err
		}
	}
	return &sdk.Result{Metrics: map[string]float64{"loss": 1.0 / 20, "per_second": float64(c.runs)}}, nil
}

func TestResumeIgnores(t *testing.T) {
	n := sdktest.Resume(t, &clocked{}, sdktest.ResumeCase{
		Request: &sdk.TrialRequest{TrialID: "t"}, Ignore: []string{"per_second"},
	})
	if n != 3 {
		t.Errorf("saved %d checkpoints, want 3", n)
	}
}
