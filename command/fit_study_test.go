package command

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// csvStudy is a study whose trials are the rows of a params,loss CSV, one
// succeeded trial each, with recipe set to each row's recipe column when
// there is one.
func csvStudy(t *testing.T, name string, files ...string) *api.ResultsReply {
	t.Helper()
	r := &api.ResultsReply{Study: name, Objective: "val_loss", Direction: "minimize"}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows[1:] {
			x, _ := strconv.ParseFloat(row[0], 64)
			loss, _ := strconv.ParseFloat(row[1], 64)
			params := map[string]any{"params": x, "recipe": strings.TrimSuffix(filepath.Base(file), ".csv")}
			r.Trials = append(r.Trials, succeeded(len(r.Trials), params, 0, loss))
		}
	}
	r.Total = len(r.Trials)
	return r
}

func succeeded(i int, params map[string]any, seed int64, loss float64) api.Trial {
	return api.Trial{ID: fmt.Sprintf("t%04d", i), Index: i, State: sweep.Succeeded, Attempt: 1, Seed: seed, Params: params,
		Result: &api.Result{Attempt: 1, Objective: &loss, Metrics: map[string]float64{"val_loss": loss}}}
}

// gridStudy writes spec to a file and runs every point of its grid: the
// loss follows 2 + 400 N^-0.3 (2.3 + 150 N^-0.25 for recipe b), worse away
// from the best weight decay 0.1, with a little deterministic noise so
// that the bootstrap has something to resample.
func gridStudy(t *testing.T, src string) (*sweep.Spec, string, *api.ResultsReply) {
	t.Helper()
	spec, err := sweep.Parse("study.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), spec.Name+".yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &api.ResultsReply{Study: spec.Name, Objective: "val_loss", Direction: "minimize"}
	var expand func(k int, params map[string]any)
	expand = func(k int, params map[string]any) {
		if k == len(spec.Axes) {
			n, wd := params["params"].(float64), params["wd"].(float64)
			e, a, alpha := 2.0, 400.0, 0.3
			if params["recipe"] == "b" {
				e, a, alpha = 2.3, 150, 0.25
			}
			i := len(r.Trials)
			loss := (e + a*math.Pow(n, -alpha)) * (1 + 0.1*math.Pow(math.Log10(wd/0.1), 2)) * (1 + 0.004*math.Sin(float64(7*i)))
			p := map[string]any{}
			for k, v := range params {
				p[k] = v
			}
			r.Trials = append(r.Trials, succeeded(i, p, 0, loss))
			return
		}
		for _, v := range spec.Axes[k].Values {
			params[spec.Axes[k].Name] = v
			expand(k+1, params)
		}
	}
	expand(0, map[string]any{})
	// A failed trial, which no fit may read.
	r.Trials = append(r.Trials, api.Trial{ID: "failed", Index: len(r.Trials), State: sweep.Failed, Params: map[string]any{"params": 1e6, "wd": 0.1}, Error: "exit status 3"})
	r.Total = len(r.Trials)
	return spec, file, r
}

const sizesSpec = `name: sizes
method: synthetic
space:
  params: [1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9]
  wd: [0.01, 0.1, 1.0]
analysis:
  fit: {law: power, x: params, best_over: [wd], bootstrap: 40, seed: 3}
`

const recipesSpec = `name: recipes
method: synthetic
space:
  params: [1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9]
  wd: [0.01, 0.1, 1.0]
  recipe: [a, b]
analysis:
  fit: {law: power, x: params, group: recipe, best_over: [wd], bootstrap: 30}
`

// serveStudies makes --study read the given studies, with the leader's
// fit of each as analysis.Run makes it.
func serveStudies(t *testing.T, studies map[string]*api.ResultsReply, specs map[string]*sweep.Spec) {
	t.Helper()
	old := testLoadStudy
	t.Cleanup(func() { testLoadStudy = old })
	testLoadStudy = func(ctx context.Context, name string) (*studyData, error) {
		r, ok := studies[name]
		if !ok {
			return nil, fmt.Errorf("no study named %q", name)
		}
		d := &studyData{Results: r}
		if s := specs[name]; s != nil && s.Analysis != nil && s.Analysis.Fit != nil {
			sums, err := analysis.Run(ctx, s, r.Trials, r.Direction, analysis.Options{})
			if err != nil {
				return nil, err
			}
			d.Analysis = sums
		}
		return d, nil
	}
}

// fitJSON is the part of fit's JSON report these tests read.
type fitJSON struct {
	N      int       `json:"n"`
	Plan   *planJSON `json:"plan"`
	Params map[string]struct {
		Value float64   `json:"value"`
		CI    []float64 `json:"ci"`
	} `json:"params"`
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-7*math.Max(math.Abs(a), math.Abs(b)) }

// TestFitStudyByItsPlan fits studies by their analysis plans through the
// command, `fit --study NAME --spec NAME.yaml` and nothing else, and
// requires the parameters and intervals that analysis.Run, the leader's
// refit, gives: the same best runs (the study also ran the worse weight
// decays, which a fit of every run would read), law, x, groups, bootstrap
// count and seeds.
func TestFitStudyByItsPlan(t *testing.T) {
	for _, src := range []string{sizesSpec, recipesSpec} {
		spec, file, r := gridStudy(t, src)
		t.Run(spec.Name, func(t *testing.T) {
			serveStudies(t, map[string]*api.ResultsReply{spec.Name: r}, map[string]*sweep.Spec{spec.Name: spec})
			out, err := runCommand(t, "fit", "--study", spec.Name, "--spec", file, "--format", "json")
			if err != nil {
				t.Fatal(err)
			}
			var reps []fitJSON
			if spec.Analysis.Fit.Group == "" {
				var one fitJSON
				err = json.Unmarshal([]byte(out), &one)
				reps = []fitJSON{one}
			} else {
				err = json.Unmarshal([]byte(out), &reps)
			}
			if err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			sums, err := analysis.Run(t.Context(), spec, r.Trials, r.Direction, analysis.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(reps) != len(sums) {
				t.Fatalf("%d fits, the leader has %d:\n%s", len(reps), len(sums), out)
			}
			plan := spec.Analysis.Fit
			for i, s := range sums {
				rep := reps[i]
				if p := rep.Plan; p == nil || p.GroupValue != s.Group || p.Bootstrap != plan.Bootstrap || p.Seed != plan.Seed || p.Points != s.Points || len(p.Flags) != 0 {
					t.Errorf("group %q: plan %+v; want the study's own (%d points)", s.Group, rep.Plan, s.Points)
				}
				if rep.N != s.Points {
					t.Errorf("group %q: fitted %d points, the leader %d", s.Group, rep.N, s.Points)
				}
				for _, p := range s.Params {
					got := rep.Params[p.Name]
					if !near(got.Value, p.Value) {
						t.Errorf("group %q: %s = %v, the leader's %v", s.Group, p.Name, got.Value, p.Value)
					}
					if len(got.CI) != 2 || p.Lo == nil || !near(got.CI[0], *p.Lo) || !near(got.CI[1], *p.Hi) {
						t.Errorf("group %q: %s interval %v, the leader's (%v, %v)", s.Group, p.Name, got.CI, deref(p.Lo), deref(p.Hi))
					}
				}
			}
			table, err := runCommand(t, "fit", "--study", spec.Name, "--spec", file)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("study %s, fitted by its analysis plan: power law over params", spec.Name)
			if !strings.Contains(table, want) || !strings.Contains(table, "best run at each point over wd") || !strings.Contains(table, fmt.Sprintf("bootstrap %d, seed %d", plan.Bootstrap, plan.Seed)) {
				t.Errorf("the table does not say which plan settings it used:\n%s", table)
			}
		})
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestFitStudyFlagsOverrideThePlan checks that a flag replaces the plan's
// setting, and that the report names it.
func TestFitStudyFlagsOverrideThePlan(t *testing.T) {
	spec, file, r := gridStudy(t, sizesSpec)
	serveStudies(t, map[string]*api.ResultsReply{"sizes": r}, map[string]*sweep.Spec{"sizes": spec})
	tests := []struct {
		name  string
		args  []string
		check func(rep fitJSON) error
	}{
		{"no bootstrap", []string{"--bootstrap", "0"}, func(rep fitJSON) error {
			if rep.Plan.Bootstrap != 0 || rep.Params["E"].CI != nil || strings.Join(rep.Plan.Flags, " ") != "--bootstrap 0" {
				return fmt.Errorf("want no interval and the flag named")
			}
			return nil
		}},
		{"seed", []string{"--seed", "7", "--bootstrap", "10"}, func(rep fitJSON) error {
			if rep.Plan.Seed != 7 || rep.Plan.Bootstrap != 10 || strings.Join(rep.Plan.Flags, " ") != "--bootstrap 10 --seed 7" {
				return fmt.Errorf("want seed 7 and bootstrap 10 from the flags")
			}
			return nil
		}},
		{"loss", []string{"--loss", "ls"}, func(rep fitJSON) error {
			if strings.Join(rep.Plan.Flags, " ") != "--loss ls" || rep.Plan.Bootstrap != 40 {
				return fmt.Errorf("want the plan with --loss ls")
			}
			return nil
		}},
		{"every run", []string{"--all-runs"}, func(rep fitJSON) error {
			if rep.Plan != nil || rep.N != 21 {
				return fmt.Errorf("want all 21 succeeded trials fitted without the plan")
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCommand(t, "fit", append([]string{"--study", "sizes", "--spec", file, "--format", "json"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var rep fitJSON
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			if err := tc.check(rep); err != nil {
				t.Errorf("%v; got plan %+v, %d points:\n%s", err, rep.Plan, rep.N, out)
			}
		})
	}
}

func TestFitStudyPlanErrors(t *testing.T) {
	spec, file, r := gridStudy(t, sizesSpec)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := write("other.yaml", strings.Replace(sizesSpec, "name: sizes", "name: other", 1))
	chinchilla := write("chinchilla.yaml", strings.Replace(sizesSpec, "law: power", "law: chinchilla", 1))
	serveStudies(t, map[string]*api.ResultsReply{"sizes": r}, map[string]*sweep.Spec{"sizes": spec})
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"plan not given", []string{"--study", "sizes"}, []string{"study sizes has an analysis plan", "power law over params", "--spec FILE.yaml", "--all-runs"}},
		{"column flag", []string{"--study", "sizes", "--spec", file, "--y", "val_loss"}, []string{"--y:", "analysis plan", "--all-runs"}},
		{"spec of another study", []string{"--study", "sizes", "--spec", other}, []string{"other.yaml defines study other", "--study sizes"}},
		{"another plan", []string{"--study", "sizes", "--spec", chinchilla}, []string{"chinchilla law over params", "the leader fits study sizes's power law", "pass the spec sizes was submitted with"}},
		{"two studies", []string{"--study", "sizes,other"}, []string{"--study: this command reads one study, got 2", "crossover compares two"}},
		{"spec without a study", []string{"--data", scalingTestdata + "recipe_a.csv", "--spec", file}, []string{"--spec", "needs --study"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCommand(t, "fit", tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// crossoverJSONOut is the part of crossover's JSON these tests read.
type crossoverJSONOut struct {
	Names []string  `json:"names"`
	Fits  []fitJSON `json:"fits"`
	Roots []struct {
		X float64 `json:"x"`
	} `json:"roots"`
}

// TestCrossoverFromStudies compares two recipes read from studies, in
// every way crossover takes them, with the same recipes read from files.
func TestCrossoverFromStudies(t *testing.T) {
	a, b := scalingTestdata+"recipe_a.csv", scalingTestdata+"recipe_b.csv"
	const grouped = `name: ab
method: synthetic
space:
  params: [1, 10]
  recipe: [recipe_a, recipe_b]
analysis:
  fit: {law: power, x: params, group: recipe, bootstrap: 0}
`
	specFile := filepath.Join(t.TempDir(), "ab.yaml")
	if err := os.WriteFile(specFile, []byte(grouped), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := sweep.Parse("ab.yaml", []byte(grouped))
	if err != nil {
		t.Fatal(err)
	}
	serveStudies(t, map[string]*api.ResultsReply{"a": csvStudy(t, "a", a), "b": csvStudy(t, "b", b), "ab": csvStudy(t, "ab", a, b)},
		map[string]*sweep.Spec{"ab": spec})
	common := []string{"--range", "1:1e6", "--loss", "ls", "--format", "json"}
	run := func(args ...string) crossoverJSONOut {
		t.Helper()
		out, err := runCommand(t, "crossover", append(args, common...)...)
		if err != nil {
			t.Fatalf("crossover %s: %v", strings.Join(args, " "), err)
		}
		var r crossoverJSONOut
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		return r
	}
	want := run("--data", a, "--versus", b)
	if len(want.Roots) == 0 {
		t.Fatal("the files' recipes do not cross")
	}
	tests := []struct {
		name  string
		args  []string
		names string
	}{
		{"two studies", []string{"--study", "a", "--study", "b"}, "a,b"},
		{"a list of two", []string{"--study", "a,b"}, "a,b"},
		{"a study and a file", []string{"--study", "a", "--versus", b}, "a,B"},
		{"one study's two groups", []string{"--study", "ab", "--spec", specFile}, "recipe_a,recipe_b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := run(tc.args...)
			if n := strings.Join(got.Names, ","); n != tc.names {
				t.Errorf("names %s, want %s", n, tc.names)
			}
			if len(got.Roots) != len(want.Roots) {
				t.Fatalf("%d roots, the files give %d", len(got.Roots), len(want.Roots))
			}
			for i := range want.Roots {
				if !near(got.Roots[i].X, want.Roots[i].X) {
					t.Errorf("root %d at %v, the files' at %v", i, got.Roots[i].X, want.Roots[i].X)
				}
			}
			for k := range want.Fits {
				for name, p := range want.Fits[k].Params {
					if g := got.Fits[k].Params[name].Value; !near(g, p.Value) {
						t.Errorf("recipe %d: %s = %v, from the file %v", k, name, g, p.Value)
					}
				}
			}
		})
	}
}

func TestCrossoverStudyErrors(t *testing.T) {
	a := scalingTestdata + "recipe_a.csv"
	serveStudies(t, map[string]*api.ResultsReply{"a": csvStudy(t, "a", a), "b": csvStudy(t, "b", a), "c": csvStudy(t, "c", a)}, nil)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"three studies", []string{"--study", "a,b,c"}, []string{"compares two studies, got 3"}},
		{"two studies and a file", []string{"--study", "a,b", "--versus", a}, []string{"drop --data and --versus"}},
		{"one study without a plan", []string{"--study", "a"}, []string{"study a read without its analysis plan is one recipe", "--study A --study B"}},
		{"nothing", []string{}, []string{"want two recipes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCommand(t, "crossover", append(tc.args, "--range", "1:1e6")...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestResultsCSVIsFitInput writes a study's results as `asymptote results
// --format csv` does and reads them with the scaling commands' defaults:
// the succeeded trials' rows, the objective as the loss, the params metric
// as the scale.
func TestResultsCSVIsFitInput(t *testing.T) {
	write := func(r *api.ResultsReply) []byte {
		var buf bytes.Buffer
		if err := writeResults(&buf, r, "csv", 0); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	withLoss := fixture()
	for _, tr := range withLoss.Trials {
		if tr.Result != nil {
			tr.Result.Metrics["loss"] = *tr.Result.Objective + 1
		}
	}
	// A succeeded trial whose scale is not positive: the error names its
	// line in the file (5: after the header and three trials' rows).
	bad := fixture()
	bad.Trials[3] = succeeded(3, map[string]any{"params": 1e6}, 1, 2.0)
	bad.Trials[3].Result.Metrics["params"] = -1
	none := fixture()
	none.Trials = none.Trials[2:]
	tests := []struct {
		name    string
		results *api.ResultsReply
		args    []string
		want    [][2]float64 // x, loss
		err     []string
	}{
		{"defaults", fixture(), nil, [][2]float64{{1e6, 3.25}, {1e6, 2.5}}, nil},
		{"the x parameter", fixture(), []string{"--x", "param.params"}, [][2]float64{{1e6, 3.25}, {1e7, 2.5}}, nil},
		{"a metric named loss", withLoss, nil, [][2]float64{{1e6, 4.25}, {1e6, 3.5}}, nil},
		{"--y", withLoss, []string{"--y", "val_loss"}, [][2]float64{{1e6, 3.25}, {1e6, 2.5}}, nil},
		{"--y objective", withLoss, []string{"--y", "objective"}, [][2]float64{{1e6, 3.25}, {1e6, 2.5}}, nil},
		{"a bad cell", bad, nil, nil, []string{`line 5, column "params"`, "must be positive"}},
		{"no succeeded trial", none, nil, nil, []string{"no succeeded trials yet", "3 trials (1 cancelled, 1 failed, 1 running)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs, err := parsedDataFlags(t, tc.args).readObs(write(tc.results), []string{"X"})
			if checkErr(t, err, tc.err, obs) {
				return
			}
			if len(obs) != len(tc.want) {
				t.Fatalf("read %d points, want %d: %+v", len(obs), len(tc.want), obs)
			}
			for i, w := range tc.want {
				if obs[i].X != w[0] || obs[i].Loss != w[1] {
					t.Errorf("point %d: x %v loss %v, want %v", i, obs[i].X, obs[i].Loss, w)
				}
			}
		})
	}
	// The whole commands, with their defaults, on results files.
	dir := t.TempDir()
	files := map[string]string{}
	for _, name := range []string{"a", "b"} {
		src := scalingTestdata + "recipe_" + name + ".csv"
		files[name] = filepath.Join(dir, name+".csv")
		if err := os.WriteFile(files[name], write(csvStudy(t, name, src)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runCommand(t, "fit", "--data", files["a"]); err != nil || !strings.Contains(out, "16 points") {
		t.Errorf("fit --data on a results CSV: %v\n%s", err, out)
	}
	if out, err := runCommand(t, "crossover", "--data", files["a"], "--versus", files["b"], "--range", "1:1e6"); err != nil || !strings.Contains(out, "crossings of A and B") {
		t.Errorf("crossover --data --versus on results CSVs: %v\n%s", err, out)
	}
}
