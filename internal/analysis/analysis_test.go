package analysis

import (
	"context"
	"math"
	"strings"
	"testing"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

func trial(id string, params map[string]any, seed int64, loss float64, state sweep.State) api.Trial {
	t := api.Trial{ID: id, Params: params, Seed: seed, State: state}
	if state == sweep.Succeeded {
		t.Result = &api.Result{Objective: &loss, Metrics: map[string]float64{"val_loss": loss}}
	}
	return t
}

const specSrc = `name: s
method: m
space:
  params: [1e6, 1e7, 1e8]
  wd: [0.01, 0.1, 1.0]
analysis:
  fit: {law: power, x: params, best_over: [wd], bootstrap: 50}
`

func parse(t *testing.T) *sweep.Spec {
	t.Helper()
	s, err := sweep.Parse("s.yaml", []byte(specSrc))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// law is the truth the synthetic trials follow: 2 + 400 N^-0.3, with the
// middle weight decay best.
func law(n, wd float64) float64 {
	return (2 + 400*math.Pow(n, -0.3)) * (1 + 0.1*math.Pow(math.Log10(wd/0.1), 2))
}

func grid(skip func(n, wd float64) bool) []api.Trial {
	var out []api.Trial
	for _, n := range []float64{1e6, 1e7, 1e8} {
		for _, wd := range []float64{0.01, 0.1, 1.0} {
			st := sweep.Succeeded
			if skip != nil && skip(n, wd) {
				st = sweep.Pending
			}
			out = append(out, trial("t", map[string]any{"params": n, "wd": wd}, 0, law(n, wd), st))
		}
	}
	return out
}

func TestPointsTakeTheBestOverTunedParameters(t *testing.T) {
	spec := parse(t)
	groups, err := Points(spec.Analysis.Fit, grid(nil), "minimize")
	if err != nil {
		t.Fatal(err)
	}
	ps := groups[""]
	if len(ps) != 3 {
		t.Fatalf("%d points, want one per size", len(ps))
	}
	for _, p := range ps {
		if p.Trial.Params["wd"] != 0.1 || p.Obs.Loss != law(p.X, 0.1) || p.Obs.N != p.X {
			t.Errorf("point %v: best wd %v loss %v, want wd 0.1 loss %v", p.X, p.Trial.Params["wd"], p.Obs.Loss, law(p.X, 0.1))
		}
	}
	groups, _ = Points(spec.Analysis.Fit, grid(nil), "maximize")
	for _, p := range groups[""] {
		if p.Trial.Params["wd"] == 0.1 {
			t.Errorf("maximize picked the minimum at %v", p.X)
		}
	}
}

func TestCertify(t *testing.T) {
	spec := parse(t)
	plan := spec.Analysis.Fit
	all := grid(nil)
	groups, _ := Points(plan, all, "minimize")
	if u := Certify(spec, plan, all, groups[""]); len(u) != 0 {
		t.Errorf("interior optimum with every neighbour run: uncertified %+v", u)
	}
	// The neighbour wd=1.0 at N=1e7 has not run: that point is uncertified.
	missing := grid(func(n, wd float64) bool { return n == 1e7 && wd == 1.0 })
	groups, _ = Points(plan, missing, "minimize")
	u := Certify(spec, plan, missing, groups[""])
	if len(u) != 1 || u[0].X != 1e7 || !strings.Contains(u[0].Reason, "neighbour wd=1 has no result") {
		t.Errorf("missing neighbour: uncertified = %+v", u)
	}
	// Best at the edge of the grid: only the largest weight decay ran.
	edge := grid(func(n, wd float64) bool { return wd != 1.0 })
	groups, _ = Points(plan, edge, "minimize")
	u = Certify(spec, plan, edge, groups[""])
	if len(u) != 3 || !strings.Contains(u[0].Reason, "wd=1 is the grid's last value") {
		t.Errorf("edge: uncertified = %+v", u)
	}
}

func TestRunRecoversTheLaw(t *testing.T) {
	spec := parse(t)
	var trials []api.Trial
	for _, n := range []float64{1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8, 3e8} {
		trials = append(trials, trial("t", map[string]any{"params": n, "wd": 0.1}, 0, law(n, 0.1), sweep.Succeeded))
	}
	sums, err := Run(context.Background(), spec, trials, "minimize", Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].Error != "" {
		t.Fatalf("summaries = %+v", sums)
	}
	for _, p := range sums[0].Params {
		want := map[string]float64{"E": 2, "A": 400, "alpha": 0.3}[p.Name]
		if math.Abs(p.Value-want) > 1e-3*want {
			t.Errorf("%s = %v, want %v", p.Name, p.Value, want)
		}
		if p.Lo == nil || *p.Lo > p.Value || *p.Hi < p.Value {
			t.Errorf("%s interval %v..%v does not hold the estimate %v", p.Name, p.Lo, p.Hi, p.Value)
		}
	}
	// Too few points is a summary that says so, not an error.
	sums, err = Run(context.Background(), spec, trials[:2], "minimize", Options{Workers: 1})
	if err != nil || len(sums) != 1 || !strings.Contains(sums[0].Error, "too few points") {
		t.Errorf("two points: %+v, %v; want a summary naming too few points", sums, err)
	}
}

func TestCertifyEdgesOnlyWhenTheInnerNeighbourRan(t *testing.T) {
	spec := parse(t)
	plan := spec.Analysis.Fit
	// Only the largest weight decay has run at N=1e6: it is best by default
	// but its inner neighbour has no result, so it is no reason to extend.
	early := grid(func(n, wd float64) bool { return !(n == 1e6 && wd == 1.0) })
	groups, _ := Points(plan, early, "minimize")
	u := Certify(spec, plan, early, groups[""])
	if len(u) != 1 || len(u[0].Edges) != 0 {
		t.Errorf("early: %+v; want uncertified without an edge to extend", u)
	}
	// Every weight decay ran and the largest won: extend past it.
	var won []api.Trial
	for _, tr := range grid(nil) {
		if tr.Params["wd"] == 1.0 {
			v := 1.0
			tr.Result.Objective = &v
		}
		won = append(won, tr)
	}
	groups, _ = Points(plan, won, "minimize")
	u = Certify(spec, plan, won, groups[""])
	if len(u) != 3 || len(u[0].Edges) != 1 || u[0].Edges[0] != (api.Edge{Axis: "wd", Last: true}) {
		t.Errorf("best on the last value: %+v; want an edge on wd's last value at every size", u)
	}
}

func TestZeroIsANaturalBoundNotAnEdge(t *testing.T) {
	spec, err := sweep.Parse("z.yaml", []byte("name: z\nmethod: m\nspace:\n  params: [1e6]\n  wd: [0, 0.1]\nanalysis:\n  fit: {best_over: [wd]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	trials := []api.Trial{
		trial("a", map[string]any{"params": 1e6, "wd": 0.0}, 0, 2.0, sweep.Succeeded),
		trial("b", map[string]any{"params": 1e6, "wd": 0.1}, 0, 2.1, sweep.Succeeded),
	}
	groups, _ := Points(spec.Analysis.Fit, trials, "minimize")
	if u := Certify(spec, spec.Analysis.Fit, trials, groups[""]); len(u) != 0 {
		t.Errorf("best at wd=0 with its neighbour run: uncertified %+v; zero is as low as weight decay goes", u)
	}
}

// TestBootstrapOptions pins the options the leader's refit and `asymptote
// fit --study` share: the plan's count, capped by Options.Resamples, and
// the seed after the fit's.
func TestBootstrapOptions(t *testing.T) {
	for _, tc := range []struct {
		plan, cap, want int
	}{{200, 0, 200}, {200, 100, 100}, {50, 100, 50}, {0, 100, 0}} {
		plan := &sweep.FitPlan{Bootstrap: tc.plan, Seed: 5}
		bo := BootstrapOptions(plan, Options{Resamples: tc.cap, Workers: 1})
		if bo.Resamples != tc.want || bo.Seed != 7 || bo.Workers != 1 {
			t.Errorf("plan %d, cap %d: %+v; want %d resamples, seed 7", tc.plan, tc.cap, bo, tc.want)
		}
		if o := FitOptions(plan, Options{Workers: 1}); o.Seed != 6 || o.Workers != 1 {
			t.Errorf("fit options %+v; want seed 6", o)
		}
	}
}
