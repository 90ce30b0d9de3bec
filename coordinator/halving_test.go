package coordinator_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/plugins/methods/synthetic"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// TestSuccessiveHalving tunes weight decay on the synthetic law with
// successive halving over tokens and compares it with the full grid at
// the highest fidelity: it must find a configuration within 1% of the
// grid's best for at most a quarter of the grid's compute.
func TestSuccessiveHalving(t *testing.T) {
	cl, client := syntheticCluster(t)
	spec := `name: sha
method: synthetic
space:
  weight_decay: {range: [0.01, 1], count: 9, scale: log}
fixed:
  params: 1e8
  tokens: 1e9
  noise: 0.01
derived:
  unique_tokens: tokens
resources: {cpu: 0.5, memory: 16MiB}
search:
  halving: {fidelity: tokens, max: 2.7e10, eta: 3}
`
	submit(t, client, spec)
	st := cl.WaitDone(client, "sha", 60*time.Second)
	if st.Counts["succeeded"] != 9+3+1+1 {
		t.Fatalf("counts %v: want 9, 3, 1 and 1 trials on the four rungs", st.Counts)
	}
	var shaBest, shaCompute float64 = math.Inf(1), 0
	for _, tr := range results(t, client, "sha") {
		tokens := tr.Params["tokens"].(float64)
		shaCompute += tokens
		if tokens == 2.7e10 {
			shaBest = *tr.Result.Objective
		}
	}
	// The grid: every weight decay at the highest fidelity.
	parsed, err := sweep.Parse("sha.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	trials, _ := parsed.Expand()
	gridBest, gridCompute := math.Inf(1), 0.0
	for _, tr := range trials {
		v, err := parsed.Variant(tr.Params, map[string]any{"tokens": 2.7e10}, tr.Seed)
		if err != nil {
			t.Fatal(err)
		}
		res, err := synthetic.New().Run(context.Background(), &sdk.TrialRequest{TrialID: v.ID, Params: v.Params, Seed: v.Seed, Threads: 1}, func(sdk.Metrics) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		gridBest = min(gridBest, res.Metrics["val_loss"])
		gridCompute += 2.7e10
	}
	if shaBest > gridBest*1.01 {
		t.Errorf("successive halving's best %.5f is more than 1%% worse than the grid's %.5f", shaBest, gridBest)
	}
	if frac := shaCompute / gridCompute; frac > 0.25 {
		t.Errorf("successive halving used %.0f%% of the grid's compute, want at most 25%%", 100*frac)
	}
	t.Logf("successive halving: best %.5f vs grid %.5f (%.2f%% worse) for %.1f%% of the grid's compute", shaBest, gridBest, 100*(shaBest/gridBest-1), 100*shaCompute/gridCompute)
	r, err := client.Status(t.Context(), "sha")
	if err != nil {
		t.Fatal(err)
	}
	// Three promotions, each recorded with its rung and the trials it
	// stopped.
	d := r.Studies[0].Decisions
	if len(d) != 3 || !strings.Contains(d[0].Reason, "rung tokens=1e+09 finished; promoted the best 3 of 9") || len(d[0].Stopped) != 6 {
		t.Errorf("decisions = %+v; want three promotions, the first keeping 3 of 9 and stopping 6", d)
	}
}
