package command

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestMultiplierErrors(t *testing.T) {
	a, b := scalingTestdata+"recipe_a.csv", scalingTestdata+"recipe_b.csv"
	base := []string{"--data", a, "--versus", b, "--range", "1:1e6", "--loss", "ls"}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"gate without scales", []string{"--gate", "1.1"}, []string{"--gate needs --multiplier"}},
		{"gate without bootstrap", []string{"--multiplier", "100", "--gate", "1.1"}, []string{"--gate", "--bootstrap N"}},
		{"negative gate", []string{"--multiplier", "100", "--gate", "-1", "--bootstrap", "10"}, []string{"--gate", "positive"}},
		{"bad scale", []string{"--multiplier", "abc"}, []string{"--multiplier", `"abc"`}},
		{"zero scale", []string{"--multiplier", "0"}, []string{"--multiplier", "positive"}},
		{"certainty without candidates", []string{"--multiplier", "100", "--certainty", "0.05"}, []string{"--certainty WIDTH needs --candidates"}},
		{"certainty without a scale", []string{"--certainty", "0.05", "--candidates", "100"}, []string{"--certainty WIDTH needs"}},
		{"crossing certainty without candidates", []string{"--crossing-certainty", "1.5"}, []string{"--crossing-certainty RATIO needs --candidates"}},
		{"crossing certainty not a ratio", []string{"--crossing-certainty", "0.5", "--candidates", "100"}, []string{"--crossing-certainty", "above 1"}},
		{"crossing certainty without a crossing", []string{"--range", "1e5:1e6", "--crossing-certainty", "1.5", "--candidates", "100"}, []string{"--crossing-certainty", "do not cross"}},
		{"data multiplier of a power law", []string{"--data-multiplier", "1e9:2e10"}, []string{"--data-multiplier", "chinchilla or datablations"}},
		{"gate without any scale", []string{"--gate", "2", "--bootstrap", "10"}, []string{"--gate needs --multiplier X,... or --data-multiplier"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCommand(t, "crossover", append(append([]string(nil), base...), tc.args...)...)
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

func TestFrontierApproachErrors(t *testing.T) {
	iso := scalingTestdata + "isoflop.csv"
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"approach 1 on final losses", []string{"--approach", "1", "--data", iso, "--budget", "1e22"}, []string{"approach 1", "has 1 point", "per-step history or checkpoint records"}},
		{"approach 1 without curves", []string{"--approach", "1", "--budget", "1e22"}, []string{"--approach 1", "--curves FILE.csv", "-checkpoints --format csv"}},
		{"approach 1 from given constants", []string{"--approach", "1", "--given", "E=1,A=1,B=1,alpha=0.3,beta=0.3", "--budget", "1e22"}, []string{"--approach 1", "not --given"}},
		{"curves without approach 1", []string{"--approach", "2", "--curves", iso, "--data", iso, "--budget", "1e22"}, []string{"--curves", "add 1 to --approach"}},
		{"one plot", []string{"--approach", "1,2", "--data", iso, "--plot", "x.png", "--budget", "1e22"}, []string{"--plot draws one figure"}},
		{"unknown approach", []string{"--approach", "4", "--data", iso, "--budget", "1e22"}, []string{"--approach", `"4"`}},
		{"approach 2 from given constants", []string{"--approach", "2", "--given", "E=1,A=1,B=1,alpha=0.3,beta=0.3", "--budget", "1e22"}, []string{"--approach 2", "not --given"}},
		{"one budget", []string{"--approach", "2", "--data", iso, "--budget", "1e22", "--flop-tolerance", "1e6"}, []string{"1 of 1 budgets", "needs two", "compute tolerance (1e+06)"}},
		{"no replicates to measure", []string{"--approach", "2", "--data", iso, "--budget", "1e22", "--seed-noise", "measure"}, []string{"--seed-noise measure", "no configuration has two runs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCommand(t, "frontier", tc.args...)
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

// TestFrontierApproach1Study reads approach 1's training curves from a
// live study's records: its checkpoint records, or its metric history
// where it saved no checkpoints, as `results -checkpoints` (-history)
// prints them. The study's curves must give the same envelope as the same
// records read from a file, say which records they are, and a study with
// no records must be refused.
func TestFrontierApproach1Study(t *testing.T) {
	hist, err := os.ReadFile(scalingTestdata + "history.csv")
	if err != nil {
		t.Fatal(err)
	}
	header := []byte(strings.SplitN(string(hist), "\n", 2)[0] + "\n")
	var asked []string
	old := testLoadHistory
	t.Cleanup(func() { testLoadHistory = old })
	testLoadHistory = func(_ context.Context, name string, checkpoints bool) ([]byte, error) {
		asked = append(asked, fmt.Sprintf("%s/%v", name, checkpoints))
		switch {
		case name == "ckpt" && checkpoints, name == "hist" && !checkpoints:
			return hist, nil
		case name == "ckpt", name == "hist", name == "empty":
			return header, nil
		}
		return nil, fmt.Errorf("no study %s", name)
	}
	args := []string{"--approach", "1", "--envelope-budgets", "12", "--budget", "1e21", "--format", "json"}
	fromFile, err := runCommand(t, "frontier", append([]string{"--data", scalingTestdata + "history.csv"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	approach1 := func(out string) map[string]any {
		var v map[string]map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return v["approach1"]
	}
	want := approach1(fromFile)
	for _, tc := range []struct{ study, source, asked string }{
		{"ckpt", "study ckpt, its checkpoint records", "ckpt/true"},
		{"hist", "study hist, its metric history (no checkpoint records)", "ckpt/true hist/true hist/false"},
	} {
		out, err := runCommand(t, "frontier", append([]string{"--study", tc.study}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v", tc.study, err)
		}
		got := approach1(out)
		if got["source"] != tc.source {
			t.Errorf("%s: source %q, want %q", tc.study, got["source"], tc.source)
		}
		delete(got, "source")
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Errorf("%s: the study's envelope differs from the file's:\n%s\n%s", tc.study, g, w)
		}
		if a := strings.Join(asked, " "); a != tc.asked {
			t.Errorf("%s: read %s, want %s", tc.study, a, tc.asked)
		}
	}
	for _, tc := range []struct{ study, want string }{
		{"empty", "study empty has no metric history yet"},
		{"gone", "no study gone"},
	} {
		if _, err := runCommand(t, "frontier", append([]string{"--study", tc.study}, args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("study %s: error %v, want %q", tc.study, err, tc.want)
		}
	}
	out, err := runCommand(t, "frontier", "--approach", "1", "--study", "ckpt", "--envelope-budgets", "12", "--budget", "1e21")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "frontier_approach1_study.txt", out)
}
