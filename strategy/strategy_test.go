package strategy_test

import (
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/strategy"
	"asymptote.dev/asymptote/sweep"
)

func parse(t *testing.T, spec string) *sweep.Spec {
	t.Helper()
	s, err := sweep.Parse("spec.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUsage charges a trial's budget by its kind.
func TestUsage(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(30*time.Minute), t0.Add(2*time.Hour)
	flops := 3e15
	trial := api.Trial{
		Attempts: []api.Attempt{{Started: &t0, Ended: &t1}, {Started: &t1, Ended: &t2}, {Started: &t2}},
		Result:   &api.Result{Objective: &flops, Metrics: map[string]float64{"flops": flops}},
	}
	base := "name: b\nmethod: synthetic\nspace:\n  params: [1e6]\n"
	for _, tc := range []struct {
		name, spec string
		trial      api.Trial
		want       float64
	}{
		{"no budget", base, trial, 0},
		{"FLOPs from the result", base + "budget: {flops: 1e17}\n", trial, 3e15},
		{"FLOPs before a result", base + "budget: {flops: 1e17}\n", api.Trial{}, 0},
		{"GPU hours of ended attempts", base + "resources: {gpu: 2}\nbudget: {device_hours: 100}\n", trial, 2 * 2},
		{"core hours without a GPU", base + "resources: {cpu: 0.5}\nbudget: {device_hours: 100}\n", trial, 0.5 * 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strategy.Usage(parse(t, tc.spec), &tc.trial); got != tc.want {
				t.Errorf("usage %g, want %g", got, tc.want)
			}
		})
	}
}

// TestHalvingEnds checks the steps that end successive halving: the last
// rung reached, or a rung whose configurations have no result.
func TestHalvingEnds(t *testing.T) {
	spec := parse(t, `name: sha
method: synthetic
space:
  weight_decay: [0.1, 0.3]
fixed:
  tokens: 1e9
search:
  halving: {fidelity: tokens, max: 3e9, eta: 3}
`)
	trials, err := spec.Expand()
	if err != nil {
		t.Fatal(err)
	}
	loss := 3.0
	recs := func(state sweep.State, tokens float64, res *api.Result) []api.Trial {
		var out []api.Trial
		for _, tr := range trials {
			p := map[string]any{}
			for k, v := range tr.Params {
				p[k] = v
			}
			p["tokens"] = tokens
			out = append(out, api.Trial{ID: tr.ID, Params: p, Seed: tr.Seed, State: state, Result: res})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		trials []api.Trial
		more   bool
	}{
		{"the first rung promotes", recs(sweep.Succeeded, 1e9, &api.Result{Objective: &loss}), true},
		{"no results promote nothing", recs(sweep.Failed, 1e9, nil), false},
		{"past max adds nothing", recs(sweep.Succeeded, 3e9, &api.Result{Objective: &loss}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := strategy.Next(t.Context(), &strategy.Study{Spec: spec, Objective: "val_loss", Direction: "minimize", Trials: tc.trials})
			if err != nil {
				t.Fatal(err)
			}
			if st.More() != tc.more {
				t.Errorf("more = %v, want %v (step %+v)", st.More(), tc.more, st)
			}
			if tc.more && (len(st.Add) != 1 || st.Add[0].Params["tokens"] != 3e9 || len(st.Decision.Stopped) != 1) {
				t.Errorf("step %+v: want the better configuration at 3e9 tokens and the other stopped", st)
			}
		})
	}
}

// TestNextWithoutSearch takes no step for a study with no search.
func TestNextWithoutSearch(t *testing.T) {
	st, err := strategy.Next(t.Context(), &strategy.Study{Spec: parse(t, "name: g\nmethod: synthetic\nspace:\n  params: [1e6]\n")})
	if err != nil || st.More() || st.Decision != nil {
		t.Errorf("step %+v, %v: want none", st, err)
	}
}
