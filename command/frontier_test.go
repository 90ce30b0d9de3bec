package command

import (
	"strings"
	"testing"
)

func TestFrontierApproachErrors(t *testing.T) {
	iso := scalingTestdata + "isoflop.csv"
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"approach 1", []string{"--approach", "1", "--data", iso, "--budget", "1e22"}, []string{"--approach 1", "per-step losses"}},
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
