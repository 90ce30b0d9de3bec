package command

import (
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
