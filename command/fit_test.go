package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The scaling commands' golden files live in testdata/scaling; rewrite them
// with
//
//	go test ./command -run 'Scaling' -update
func init() {
	// Another golden test in this package may already own -update.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

const (
	scalingTestdata = "testdata/scaling/"
	datablationsCSV = "../scaling/testdata/datablations_c4_val_losses.csv"
	synthCSV        = "../scaling/testdata/chinchilla_synthetic_240.csv"
)

// testLoadStudy, when set, is what runCommand's commands read --study
// from.
var testLoadStudy func(ctx context.Context, name string) (*studyData, error)

// testLoadHistory, when set, is what runCommand's commands read a study's
// metric history from.
var testLoadHistory func(ctx context.Context, name string, checkpoints bool) ([]byte, error)

// runCommand runs the named command and returns its stdout.
func runCommand(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c, _ := lookup(name)
	err := c.run(context.Background(), Env{Stdout: &out, Stderr: &errOut, loadStudy: testLoadStudy, loadHistory: testLoadHistory}, args)
	return out.String(), err
}

func golden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join(scalingTestdata, file)
	if updating() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func TestScalingGolden(t *testing.T) {
	a, b := scalingTestdata+"recipe_a.csv", scalingTestdata+"recipe_b.csv"
	tests := []struct {
		golden string
		cmd    string
		args   []string
	}{
		{"fit_power.json", "fit", []string{"--law", "power", "--data", a, "--loss", "ls", "--bootstrap", "100", "--at", "1e4", "--format", "json"}},
		{"fit_power.txt", "fit", []string{"--law", "power", "--data", a, "--loss", "ls", "--bootstrap", "100", "--at", "1e4,1e6", "--residuals"}},
		{"fit_holdout.txt", "fit", []string{"--law", "power", "--data", a, "--loss", "ls", "--bootstrap", "100", "--holdout", "3"}},
		{"fit_no_dof.txt", "fit", []string{"--law", "power", "--data", scalingTestdata + "three_points.csv", "--loss", "ls", "--bootstrap", "100", "--at", "1e4"}},
		{"fit_nested.txt", "fit", []string{"--law", "ensemble", "--nested", "--data", scalingTestdata + "ensembles.csv", "--loss", "ls", "--bootstrap", "50"}},
		{"fit_chinchilla.txt", "fit", []string{"--law", "chinchilla", "--data", synthCSV, "--starts", "24", "--drop-highest", "5", "--lr-test", "E=1.69,A=406.4,B=410.7,alpha=0.34,beta=0.28"}},
		{"fit_datablations.txt", "fit", []string{"--law", "datablations", "--data", datablationsCSV, "--y", "val_loss",
			"--fix", "E=1.8691,A=520.82,B=1487.7,alpha=0.3526596,beta=0.3526596", "--bootstrap", "50"}},
		{"fit_identify.txt", "fit", []string{"--law", "power", "--data", a, "--loss", "ls", "--identify"}},
		{"fit_identify.json", "fit", []string{"--law", "chinchilla", "--data", scalingTestdata + "isoflop.csv", "--starts", "24", "--identify", "--format", "json"}},
		{"fit_certainty.txt", "fit", []string{"--law", "power", "--data", a, "--loss", "ls", "--certainty", "E=0.01", "--candidates", "1e3,1e4,1e5"}},
		{"fit_seed_noise.txt", "fit", []string{"--law", "power", "--data", scalingTestdata + "replicates.csv", "--group", "run", "--loss", "ls", "--bootstrap", "50", "--seed-noise", "measure", "--at", "1e4"}},
		{"fit_seed_noise_assumed.json", "fit", []string{"--law", "power", "--data", a, "--loss", "ls", "--bootstrap", "50", "--seed-noise", "0.004", "--at", "1e4", "--format", "json"}},
		{"crossover.txt", "crossover", []string{"--data", a, "--versus", b, "--range", "1:1e6", "--loss", "ls", "--bootstrap", "100", "--target", "1e5", "--names", "baseline,regularized"}},
		{"crossover_multiplier.txt", "crossover", []string{"--data", a, "--versus", b, "--range", "1:1e6", "--loss", "ls", "--bootstrap", "100", "--multiplier", "10,100,1e4", "--gate", "1.1", "--names", "baseline,regularized"}},
		{"crossover_multiplier.json", "crossover", []string{"--data", b, "--versus", a, "--range", "1:1e6", "--loss", "ls", "--bootstrap", "50", "--multiplier", "10", "--format", "json"}},
		{"crossover_data_multiplier.txt", "crossover", []string{"--law", "chinchilla", "--data", scalingTestdata + "isoflop.csv", "--versus", synthCSV, "--range", "1e18:1e24", "--starts", "24", "--bootstrap", "20", "--multiplier", "1e21", "--data-multiplier", "1e9:2e10,1e10:1e12", "--names", "iso,synthetic"}},
		{"crossover_certainty.txt", "crossover", []string{"--data", a, "--versus", b, "--range", "1:1e6", "--loss", "ls", "--multiplier", "100", "--certainty", "0.05", "--candidates", "100,1000", "--names", "baseline,regularized"}},
		{"crossover_crossing_certainty.txt", "crossover", []string{"--data", a, "--versus", b, "--range", "1:1e6", "--loss", "ls", "--bootstrap", "50", "--crossing-certainty", "1.05", "--candidates", "30,100,300", "--names", "baseline,regularized"}},
		{"crossover_crossing_certainty.json", "crossover", []string{"--data", a, "--versus", b, "--range", "1:1e6", "--loss", "ls", "--crossing-certainty", "1.03", "--candidates", "30,100,300", "--format", "json"}},
		{"crossover.json", "crossover", []string{"--data", a, "--versus", b, "--range", "1:1e6", "--loss", "ls", "--format", "json"}},
		{"frontier.txt", "frontier", []string{"--given", "E=1.8169,A=482.01,B=2085.43,alpha=0.3478,beta=0.3658", "--budget", "1e21,5.88e23"}},
		{"frontier_constrained.json", "frontier", []string{"--law", "datablations", "--given",
			"E=1.8691,A=520.82,B=1487.7,alpha=0.3526596,beta=0.3526596,RD_star=15.387756,RN_star=5.309743",
			"--budget", "1e22", "--unique", "25e9", "--format", "json"}},
		{"frontier_approaches.txt", "frontier", []string{"--approach", "2,3", "--data", scalingTestdata + "isoflop.csv", "--bootstrap", "50", "--starts", "24", "--budget", "1e22,1e24"}},
		{"frontier_approach1.txt", "frontier", []string{"--approach", "1", "--curves", scalingTestdata + "curves.csv", "--group", "run", "--bootstrap", "100", "--budget", "1e21,1e23"}},
		{"frontier_approach1_history.json", "frontier", []string{"--approach", "1", "--data", scalingTestdata + "history.csv", "--envelope-budgets", "12", "--budget", "1e21", "--format", "json"}},
		{"frontier_approaches123.txt", "frontier", []string{"--approach", "1,2,3", "--curves", scalingTestdata + "curves.csv", "--data", scalingTestdata + "isoflop.csv", "--bootstrap", "50", "--starts", "24", "--budget", "1e22"}},
		{"frontier_approach2.json", "frontier", []string{"--approach", "2", "--data", scalingTestdata + "isoflop.csv", "--bootstrap", "50", "--seed-noise", "0.01", "--budget", "1e22", "--format", "json"}},
		{"epochs.txt", "epochs", []string{"--data", datablationsCSV, "--y", "val_loss", "--base", "datablations"}},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := runCommand(t, tc.cmd, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, got)
		})
	}
}

func TestScalingInputErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"missing column", []string{"--data", write("a.csv", "params,val\n1,2\n")}, []string{`column "loss"`, "missing", "params, val"}},
		{"non-positive loss", []string{"--data", write("b.csv", "params,loss\n1,2\n2,-1\n3,1\n4,1\n")}, []string{`line 3, column "loss"`, "positive"}},
		{"NaN size", []string{"--data", write("c.csv", "params,loss\n1,2\nNaN,1\n3,1\n4,1\n")}, []string{`line 3, column "params"`, "NaN"}},
		{"not a number", []string{"--data", write("d.csv", "params,loss\n1,2\n2,abc\n3,1\n")}, []string{`line 3, column "loss"`, `"abc" is not a number`}},
		{"too few points", []string{"--law", "chinchilla", "--data", write("e.csv", "params,tokens,loss\n1e8,1e9,3\n2e8,2e9,2.9\n")}, []string{"too few points", "5 free parameters", "2 points"}},
		{"study without a coordinator", []string{"--study", "s1"}, []string{"study s1", "connect to NATS at nats://127.0.0.1:1"}},
		{"unknown parameter", []string{"--data", scalingTestdata + "recipe_a.csv", "--fix", "gamma=1"}, []string{`no parameter "gamma"`}},
		{"no tokens or compute", []string{"--law", "chinchilla", "--data", write("f.csv", "params,loss\n1e8,3\n")}, []string{`column "tokens": missing`}},
		{"unknown law", []string{"--law", "cubic", "--data", scalingTestdata + "recipe_a.csv"}, []string{`unknown law "cubic"`}},
		{"certainty without candidates", []string{"--data", scalingTestdata + "recipe_a.csv", "--certainty", "E=0.01"}, []string{"--certainty NAME=WIDTH and --candidates"}},
		{"certainty of a fixed parameter", []string{"--data", scalingTestdata + "recipe_a.csv", "--fix", "E=2", "--certainty", "E=0.01", "--candidates", "1e3"}, []string{"--certainty", "E is fixed"}},
		{"certainty of an unknown parameter", []string{"--data", scalingTestdata + "recipe_a.csv", "--certainty", "B=0.01", "--candidates", "1e3"}, []string{"--certainty", `no parameter "B"`}},
		{"seed noise without replicates", []string{"--data", scalingTestdata + "recipe_a.csv", "--seed-noise", "measure"}, []string{"--seed-noise measure", "no configuration has two runs", "0.004"}},
		{"seed noise not a level", []string{"--data", scalingTestdata + "recipe_a.csv", "--seed-noise", "lots"}, []string{"--seed-noise", "want measure or a level"}},
		{"seed noise negative", []string{"--data", scalingTestdata + "recipe_a.csv", "--seed-noise", "-1"}, []string{"--seed-noise", "positive"}},
	}
	t.Setenv("ASYMPTOTE_NATS_URL", "nats://127.0.0.1:1")
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

func TestScalingStudyHook(t *testing.T) {
	r := csvStudy(t, "sweep-7", scalingTestdata+"recipe_a.csv")
	old := testLoadStudy
	t.Cleanup(func() { testLoadStudy = old })
	testLoadStudy = func(_ context.Context, name string) (*studyData, error) {
		if name != "sweep-7" {
			return nil, errors.New("no such study")
		}
		return &studyData{Results: r}, nil
	}
	out, err := runCommand(t, "fit", "--study", "sweep-7", "--loss", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "16 points") {
		t.Errorf("fit from a study: %s", out)
	}
}

func TestScalingPlot(t *testing.T) {
	for _, ext := range []string{"png", "svg"} {
		path := filepath.Join(t.TempDir(), "fit."+ext)
		if _, err := runCommand(t, "fit", "--data", scalingTestdata+"recipe_a.csv", "--loss", "ls", "--bootstrap", "50", "--plot", path); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
			t.Errorf("plot %s: %v", path, err)
		}
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		cmd   string
		args  []string
		files []string
	}{
		{"fit", []string{"--data", scalingTestdata + "replicates.csv", "--group", "run", "--loss", "ls", "--bootstrap", "20", "--seed-noise", "measure", "--plot", filepath.Join(dir, "weighted.png")}, []string{"weighted.png"}},
		{"frontier", []string{"--approach", "2", "--data", scalingTestdata + "isoflop.csv", "--bootstrap", "20", "--budget", "1e22", "--plot", filepath.Join(dir, "iso.svg")}, []string{"iso.svg"}},
		{"frontier", []string{"--approach", "1", "--curves", scalingTestdata + "curves.csv", "--group", "run", "--budget", "1e22", "--plot", filepath.Join(dir, "envelope.png")}, []string{"envelope.png"}},
		{"crossover", []string{"--data", scalingTestdata + "recipe_a.csv", "--versus", scalingTestdata + "recipe_b.csv", "--range", "1:1e6", "--loss", "ls", "--bootstrap", "20", "--multiplier", "10", "--gate", "1.1", "--plot", filepath.Join(dir, "cross.png")}, []string{"cross.png", "cross-multiplier.png"}},
	} {
		if _, err := runCommand(t, tc.cmd, tc.args...); err != nil {
			t.Fatalf("%s: %v", tc.cmd, err)
		}
		for _, f := range tc.files {
			if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() < 1000 {
				t.Errorf("%s plot %s: %v", tc.cmd, f, err)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "epochs.png")
	if _, err := runCommand(t, "epochs", "--data", datablationsCSV, "--y", "val_loss", "--base", "datablations", "--plot", path); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
		t.Errorf("plot %s: %v", path, err)
	}
}

// TestScalingFitNoResidualDOF fits the power law's 3 parameters to 3
// points: the curve passes through all of them, so the output must report 0
// residual degrees of freedom wherever it prints them, say the parameters
// are not identified, and give no interval (every bootstrap refit would
// return the fit itself, an interval of zero width).
func TestScalingFitNoResidualDOF(t *testing.T) {
	data := scalingTestdata + "three_points.csv"
	base := []string{"--law", "power", "--data", data, "--loss", "ls", "--bootstrap", "100", "--at", "1e4"}
	const warning = "3 points for 3 free parameters: no residual degrees of freedom, so the parameters are not identified by the data and no interval can be given"
	tests := []struct {
		name string
		args []string
	}{
		{"table", base},
		{"json", append(append([]string(nil), base...), "--format", "json")},
		{"holdout", []string{"--law", "power", "--data", scalingTestdata + "recipe_a.csv", "--loss", "ls", "--bootstrap", "100", "--holdout", "13", "--format", "json"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCommand(t, "fit", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "table" {
				for _, want := range []string{"dof 0\n", "warning: " + warning, "bootstrap: not run"} {
					if !strings.Contains(out, want) {
						t.Errorf("output lacks %q:\n%s", want, out)
					}
				}
				for _, bad := range []string{"dof -1", "% CI", "report intervals"} {
					if strings.Contains(out, bad) {
						t.Errorf("output has %q:\n%s", bad, out)
					}
				}
				return
			}
			var rep struct {
				N         int `json:"n"`
				Bootstrap struct {
					NotIdentified bool `json:"not_identified"`
				} `json:"bootstrap"`
				Params map[string]struct {
					CI json.RawMessage `json:"ci"`
					SE json.RawMessage `json:"se"`
				} `json:"params"`
				Goodness struct {
					DoF *int `json:"dof"`
				} `json:"goodness"`
				Warnings    []string `json:"warnings"`
				Predictions []struct {
					CI json.RawMessage `json:"ci"`
					PI json.RawMessage `json:"pi"`
				} `json:"predictions"`
				Holdout []struct {
					PI   json.RawMessage `json:"pi"`
					InPI bool            `json:"in_pi"`
				} `json:"holdout"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			if rep.N != 3 {
				t.Fatalf("fitted %d points, want 3", rep.N)
			}
			if d := rep.Goodness.DoF; d == nil || *d != 0 {
				t.Errorf("goodness.dof missing or not 0:\n%s", out)
			}
			if !rep.Bootstrap.NotIdentified {
				t.Error("bootstrap.not_identified is not set")
			}
			if !slices.Contains(rep.Warnings, warning) {
				t.Errorf("warnings %q lack %q", rep.Warnings, warning)
			}
			for name, p := range rep.Params {
				if given(p.CI) || given(p.SE) {
					t.Errorf("%s: interval %s, se %s given for a parameter that is not identified", name, p.CI, p.SE)
				}
			}
			for _, p := range rep.Predictions {
				if given(p.CI) || given(p.PI) {
					t.Errorf("prediction intervals %s, %s from a fit that is not identified", p.CI, p.PI)
				}
			}
			for _, h := range rep.Holdout {
				if given(h.PI) || h.InPI {
					t.Errorf("held-out prediction interval %s (in: %v) from a fit that is not identified", h.PI, h.InPI)
				}
			}
		})
	}
}

// given reports whether a JSON field is present and not null.
func given(v json.RawMessage) bool { return len(v) > 0 && string(v) != "null" }
