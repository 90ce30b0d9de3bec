package command

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"

	"asymptote.dev/asymptote/internal/api"
)

// TestStudyObsReadsAsTheResultsCSV checks that a study's trial records give
// the observations its results CSV gives under the same column flags, and
// that a bad value names its trial.
func TestStudyObsReadsAsTheResultsCSV(t *testing.T) {
	withCompute := fixture()
	withText := fixture()
	for i := range withCompute.Trials {
		withCompute.Trials[i].Params["flops"] = 6e15 * float64(i+1)
		withText.Trials[i].Params["size"] = "2e6"
	}
	nonFinite := fixture()
	nonFinite.Trials[1].Result.NonFinite = map[string]string{"grad_norm": "+Inf"}
	nonFinite.Trials[0].Result.Metrics["grad_norm"] = 1
	tests := []struct {
		name    string
		results *api.ResultsReply
		inputs  []string
		args    []string
		err     []string
	}{
		{"defaults", fixture(), []string{"X"}, nil, nil},
		{"the x parameter", fixture(), []string{"X"}, []string{"--x", "param.params"}, nil},
		{"seed and index", fixture(), []string{"X", "N"}, []string{"--x", "attempts", "--params", "param.params", "--y", "val_loss"}, nil},
		{"grouped", fixture(), []string{"X"}, []string{"--group", "recipe"}, nil},
		{"tokens from compute", withCompute, []string{"N", "D"}, []string{"--params", "param.params", "--compute", "flops"}, nil},
		{"a number as text", withText, []string{"X"}, []string{"--x", "size"}, nil},
		{"a text column", fixture(), []string{"X"}, []string{"--x", "recipe"}, []string{"trial aaaaaaaaaaaaaaaaaaaa", `column "recipe"`, `"base" is not a number`}},
		{"a non-finite metric", nonFinite, []string{"X"}, []string{"--x", "grad_norm"}, []string{"trial bbbbbbbbbbbbbbbbbbbb", "is infinite"}},
		{"a missing column", fixture(), []string{"X"}, []string{"--x", "width"}, []string{`column "width": missing`, "trial, index, state, seed, attempts, lr, param.params, recipe, objective, params, val_loss, error"}},
		{"no succeeded trial", &api.ResultsReply{Trials: fixture().Trials[2:]}, []string{"X"}, nil, []string{"no succeeded trials yet: the results have 3 trials (1 cancelled, 1 failed, 1 running)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			df := parsedDataFlags(t, tc.args)
			got, err := df.studyObs(tc.results.Trials, tc.inputs)
			if checkErr(t, err, tc.err, got) {
				return
			}
			var csv bytes.Buffer
			if err := writeResults(&csv, tc.results, "csv", 0); err != nil {
				t.Fatal(err)
			}
			want, err := df.readObs(csv.Bytes(), tc.inputs)
			if err != nil {
				t.Fatalf("the results CSV: %v", err)
			}
			if !reflect.DeepEqual(got, want) || len(got) == 0 || math.IsNaN(got[0].Loss) {
				t.Errorf("the records give %+v, the results CSV %+v", got, want)
			}
		})
	}
}

// parsedDataFlags are the scaling commands' data flags, parsed from args.
func parsedDataFlags(t *testing.T, args []string) *dataFlags {
	t.Helper()
	fs := newFlagSet(Env{Stderr: &bytes.Buffer{}}, "test", "")
	var df dataFlags
	df.register(fs, "params")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &df
}

// checkErr fails t unless err mentions every string of want (or, with
// want nil, is nil); it says whether an error was wanted, so that the
// caller stops there.
func checkErr(t *testing.T, err error, want []string, read any) bool {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatal(err)
	case want == nil:
		return false
	case err == nil:
		t.Fatalf("no error; read %+v", read)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	return true
}
