package strategy_test

import (
	"math"
	"strings"
	"testing"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/strategy"
	"asymptote.dev/asymptote/sweep"
)

// TestRungsJudge feeds ASHA's table reports in order and checks which
// rungs each records and whom it stops.
func TestRungsJudge(t *testing.T) {
	g := &sweep.ASHASearch{Fidelity: "tokens", Rungs: []float64{100, 300}, Eta: 3}
	type report struct {
		passed   []api.Rung
		values   map[string]float64
		reached  int
		stop     bool
		stopText string
	}
	vals := func(tokens, loss float64) map[string]float64 {
		return map[string]float64{"tokens": tokens, "val_loss": loss}
	}
	at100 := []api.Rung{{Rung: 100, Fidelity: 100, Value: 1}}
	for _, tc := range []struct {
		name     string
		maximize bool
		seed     []float64 // values already at rung 100
		reports  []report
	}{
		{name: "before the first rung", reports: []report{{values: vals(50, 1)}}},
		{name: "no objective", reports: []report{{values: map[string]float64{"tokens": 200}}}},
		{name: "NaN objective", reports: []report{{values: vals(200, math.NaN())}}},
		{name: "too few to judge", seed: []float64{1}, reports: []report{{values: vals(100, 9), reached: 1}}},
		{name: "ranks in the best third", seed: []float64{2, 3}, reports: []report{{values: vals(100, 1), reached: 1}}},
		{name: "ranks outside the best third", seed: []float64{1, 2}, reports: []report{
			{values: vals(100, 3), reached: 1, stop: true, stopText: "val_loss 3 ranks 3 of 3 trials there; the best 1 continue (cut-off 1)"},
		}},
		{name: "maximize keeps the largest", maximize: true, seed: []float64{1, 2}, reports: []report{{values: vals(100, 3), reached: 1}}},
		{name: "maximize stops the smallest", maximize: true, seed: []float64{2, 3}, reports: []report{{values: vals(100, 1), reached: 1, stop: true}}},
		{name: "a rung passed is not judged again", seed: []float64{1, 2}, reports: []report{{passed: at100, values: vals(100, 3)}}},
		{name: "a jump past two rungs records both", reports: []report{{values: vals(400, 1), reached: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := strategy.Rungs{}
			added := 0 // values the reports record at rung 100
			for _, v := range tc.seed {
				r[100] = append(r[100], v)
			}
			for i, rep := range tc.reports {
				reached, stop := r.Judge(g, "val_loss", tc.maximize, rep.passed, rep.values)
				if len(reached) > 0 && reached[0].Rung == 100 {
					added++
				}
				if len(reached) != rep.reached {
					t.Errorf("report %d reached %+v, want %d rungs", i, reached, rep.reached)
				}
				if (stop != "") != rep.stop {
					t.Errorf("report %d: stop %q, want stop=%v", i, stop, rep.stop)
				}
				if rep.stopText != "" && !strings.Contains(stop, rep.stopText) {
					t.Errorf("report %d: stop %q, want it to say %q", i, stop, rep.stopText)
				}
			}
			if got, want := len(r[100]), len(tc.seed)+added; got != want {
				t.Errorf("rung 100 holds %d values, want %d", got, want)
			}
		})
	}
}

// TestNewRungs rebuilds the table from trial records, as a new leader
// does.
func TestNewRungs(t *testing.T) {
	r := strategy.NewRungs([]api.Trial{
		{Rungs: []api.Rung{{Rung: 100, Value: 2}, {Rung: 300, Value: 1.5}}},
		{Rungs: []api.Rung{{Rung: 100, Value: 3}}},
		{},
	})
	if len(r[100]) != 2 || len(r[300]) != 1 || r[300][0] != 1.5 {
		t.Errorf("table %v", r)
	}
}
