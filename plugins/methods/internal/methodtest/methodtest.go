// Package methodtest holds what the built-in methods' tests share: they
// require the real data (skipping when it is not installed, except under
// CI, where .ci/run installs it and missing data is a failure), and they
// check cancellation and missing-data errors the same way.
package methodtest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/plugins/methods/corpus"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/plugins/sdk/sdktest"
)

// RequireKJV fails t unless the KJV text is installed.
func RequireKJV(t testing.TB) {
	t.Helper()
	_, err := corpus.LoadKJV(nil)
	check(t, err)
}

// RequireFashion fails t unless Fashion-MNIST is installed.
func RequireFashion(t testing.TB) {
	t.Helper()
	_, _, err := corpus.LoadFashionMNIST(nil)
	check(t, err)
}

func check(t testing.TB, err error) {
	t.Helper()
	// Missing data fails the test rather than skipping it: a green run
	// must mean the methods trained on real data. scripts/test installs
	// it first.
	if err != nil {
		t.Fatalf("%v (scripts/install-data.sh installs the data)", err)
	}
}

// StopsPromptly starts run, which must outlast after, cancels its context
// after that long and fails t unless run returns context.Canceled within
// a second.
func StopsPromptly(t *testing.T, after time.Duration, run func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	time.Sleep(after)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("run returned %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("run took %v to stop", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("run did not stop within 2 s of cancellation")
	}
}

// NamesInstallScript fails t unless err reports missing data and says to
// run scripts/install-data.sh.
func NamesInstallScript(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, corpus.ErrMissing) || !strings.Contains(err.Error(), "scripts/install-data.sh") {
		t.Errorf("got %v, want ErrMissing naming scripts/install-data.sh", err)
	}
}

// Run runs one trial of m in-process and returns its result and the
// metrics it reported.
func Run(ctx context.Context, m sdk.Method, params map[string]any, seed int64, threads int) (*sdk.Result, []sdk.Metrics, error) {
	var reports []sdk.Metrics
	res, err := m.Run(ctx, &sdk.TrialRequest{Params: params, Seed: seed, Threads: threads}, func(x sdk.Metrics) error {
		reports = append(reports, x)
		return nil
	})
	return res, reports, err
}

// CheckpointCase describes a method's checkpoint checks for Checkpoints.
type CheckpointCase struct {
	// Params is a short trial that sets checkpoint_every so that at least
	// one checkpoint falls between its reports, which are due every
	// ReportEvery steps.
	Params      map[string]any
	ReportEvery int64
	// Saved is the number of checkpoints the trial saves.
	Saved int
	// Others maps parameters to other values that change the model's
	// shape: resuming with one of them must fail.
	Others map[string]any
}

// Checkpoints runs the checks every checkpointing built-in method must
// pass, each a subtest:
//
//   - Resume: sdktest.Resume, bit for bit;
//   - AddReports: checkpoint_every only adds reports (CheckpointsAddReports);
//   - WhenAsked: without checkpoint_every, one checkpoint when the host asks,
//     and a resume from it ends with the uninterrupted result;
//   - RefusesOthers: resuming with other parameters fails, saying so.
func Checkpoints(t *testing.T, m sdk.Method, c CheckpointCase) {
	t.Helper()
	t.Run("Resume", func(t *testing.T) {
		n := sdktest.Resume(t, m, sdktest.ResumeCase{Request: &sdk.TrialRequest{TrialID: "t", Attempt: 1, Seed: 5, Params: c.Params}})
		if n != c.Saved {
			t.Errorf("saved %d checkpoints, want %d", n, c.Saved)
		}
	})
	t.Run("AddReports", func(t *testing.T) { CheckpointsAddReports(t, m, c.Params, c.ReportEvery) })
	t.Run("WhenAsked", func(t *testing.T) {
		p := maps.Clone(c.Params)
		delete(p, "checkpoint_every")
		CheckpointWhenAsked(t, m, p, c.ReportEvery)
	})
	t.Run("RefusesOthers", func(t *testing.T) { ResumeRefuses(t, m, c.Params, c.Others, "other parameters") })
}

// runSaving runs one trial of m in-process with a checkpoint directory,
// returning its result and reports; ask, when set, is called with the
// request and each report, so a test can ask for a checkpoint.
func runSaving(t *testing.T, m sdk.Method, req *sdk.TrialRequest, ask func(*sdk.TrialRequest, sdk.Metrics)) (*sdk.Result, []sdk.Metrics) {
	t.Helper()
	req = req.WithCheckpointRoot(t.TempDir())
	req.Attempt, req.Threads = max(req.Attempt, 1), max(req.Threads, 1)
	var reports []sdk.Metrics
	res, err := m.Run(t.Context(), req, func(x sdk.Metrics) error {
		reports = append(reports, x)
		if ask != nil {
			ask(req, x)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("run with checkpoints: %v", err)
	}
	return res, reports
}

// CheckpointsAddReports fails t unless the trial with params (which set
// checkpoint_every) reports, besides its checkpoint reports, exactly what
// it reports without checkpoint_every, with the same result bit for bit:
// checkpoints must not change a trial's results. Its reports are due
// every reportEvery steps, and at least one checkpoint must fall between
// them.
func CheckpointsAddReports(t *testing.T, m sdk.Method, params map[string]any, reportEvery int64) {
	t.Helper()
	with, reports := runSaving(t, m, &sdk.TrialRequest{Params: params, Seed: 3}, nil)
	plain := maps.Clone(params)
	delete(plain, "checkpoint_every")
	without, want, err := Run(t.Context(), m, plain, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(with.Metrics, without.Metrics) {
		t.Errorf("result with checkpoints %v, without %v: want them equal", with.Metrics, without.Metrics)
	}
	var regular []sdk.Metrics
	between := 0
	for _, r := range reports {
		if r.Step%reportEvery != 0 && r.Checkpoint != "" {
			between++
			if _, ok := r.Values[sdk.MetricTrainLoss]; ok {
				t.Errorf("checkpoint report at step %d carries train_loss; it belongs to the next regular report", r.Step)
			}
			continue
		}
		regular = append(regular, r)
	}
	if between == 0 {
		t.Fatalf("no checkpoint fell between reports (steps %v); the test needs one", steps(reports))
	}
	if len(regular) != len(want) {
		t.Fatalf("regular reports at steps %v with checkpoints, %v without", steps(regular), steps(want))
	}
	for i := range want {
		if regular[i].Step != want[i].Step || !maps.Equal(regular[i].Values, want[i].Values) {
			t.Errorf("report %d with checkpoints: step %d %v; without: step %d %v", i, regular[i].Step, regular[i].Values, want[i].Step, want[i].Values)
		}
	}
}

func steps(ms []sdk.Metrics) []int64 {
	var s []int64
	for _, m := range ms {
		s = append(s, m.Step)
	}
	return s
}

// CheckpointWhenAsked fails t unless the trial with params (and no
// checkpoint_every) saves exactly one checkpoint, right after the step at
// which the host first asks (the first report at or past step ask), and a
// new attempt resumed from it ends with the uninterrupted result bit for
// bit.
func CheckpointWhenAsked(t *testing.T, m sdk.Method, params map[string]any, ask int64) {
	t.Helper()
	asked := int64(0)
	full, reports := runSaving(t, m, &sdk.TrialRequest{Params: params, Seed: 3}, func(req *sdk.TrialRequest, x sdk.Metrics) {
		if asked == 0 && x.Step >= ask {
			if !req.AskCheckpoint() {
				t.Error("AskCheckpoint: the request keeps no checkpoints")
			}
			asked = x.Step
		}
	})
	var saved []sdk.Metrics
	for _, r := range reports {
		if r.Checkpoint != "" {
			saved = append(saved, r)
		}
	}
	if len(saved) != 1 || saved[0].Step != asked+1 {
		t.Fatalf("asked at step %d, saved checkpoints at steps %v; want one at step %d", asked, steps(saved), asked+1)
	}
	req := (&sdk.TrialRequest{Params: params, Seed: 3, Attempt: 2, Threads: 1}).WithCheckpointRoot(t.TempDir())
	req.Resume = &sdk.Checkpoint{Step: saved[0].Step, Metrics: saved[0].Values, Dir: saved[0].Checkpoint}
	res, err := m.Run(t.Context(), req, func(sdk.Metrics) error { return nil })
	if err != nil {
		t.Fatalf("resume from step %d: %v", saved[0].Step, err)
	}
	if !maps.Equal(res.Metrics, full.Metrics) {
		t.Errorf("resumed from step %d: %v, uninterrupted %v", saved[0].Step, res.Metrics, full.Metrics)
	}
}

// ResumeRefuses fails t unless, for each parameter in others, resuming
// the trial with params but that parameter's value from a checkpoint of
// the trial with params fails with an error containing want, rather than
// training on from a state of the wrong shape. Each is a subtest.
func ResumeRefuses(t *testing.T, m sdk.Method, params, others map[string]any, want string) {
	t.Helper()
	_, reports := runSaving(t, m, &sdk.TrialRequest{Params: params, Seed: 3}, nil)
	i := slices.IndexFunc(reports, func(x sdk.Metrics) bool { return x.Checkpoint != "" })
	if i < 0 {
		t.Fatal("the run saved no checkpoint")
	}
	for name, v := range others {
		t.Run(name, func(t *testing.T) {
			other := maps.Clone(params)
			other[name] = v
			req := &sdk.TrialRequest{Params: other, Seed: 3, Attempt: 2, Threads: 1,
				Resume: &sdk.Checkpoint{Step: reports[i].Step, Dir: reports[i].Checkpoint}}
			_, err := m.Run(t.Context(), req.WithCheckpointRoot(t.TempDir()), func(sdk.Metrics) error { return nil })
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("resuming with %s = %v from a checkpoint of %v: %v, want an error containing %q", name, v, params, err, want)
			}
		})
	}
}

// Continues fails t unless the trial with params and fidelity set to long
// ends, when resumed from the last checkpoint of the run with fidelity
// short, with the objective bit for bit and the other metrics in same
// (besides the objective) that the uninterrupted long run reports: what
// successive halving with continue relies on. The short run must save a
// checkpoint after its last step.
func Continues(t *testing.T, m sdk.Method, params map[string]any, fidelity string, short, long float64, objective string, same ...string) {
	t.Helper()
	lower := maps.Clone(params)
	lower[fidelity] = short
	_, reports := runSaving(t, m, &sdk.TrialRequest{Params: lower, Seed: 3}, nil)
	i := slices.IndexFunc(reports, func(x sdk.Metrics) bool { return x.Checkpoint != "" && x.Step == reports[len(reports)-1].Step })
	if i < 0 {
		t.Fatalf("the run with %s = %v saved no checkpoint after its last step %d", fidelity, short, reports[len(reports)-1].Step)
	}
	upper := maps.Clone(params)
	upper[fidelity] = long
	want, _, err := Run(t.Context(), m, upper, 3, 1)
	if err != nil {
		t.Fatalf("uninterrupted run with %s = %v: %v", fidelity, long, err)
	}
	req := (&sdk.TrialRequest{Params: upper, Seed: 3, Attempt: 1, Threads: 1}).WithCheckpointRoot(t.TempDir())
	req.Resume = &sdk.Checkpoint{Step: reports[i].Step, Metrics: reports[i].Values, Dir: reports[i].Checkpoint}
	got, err := m.Run(t.Context(), req, func(sdk.Metrics) error { return nil })
	if err != nil {
		t.Fatalf("continuing %s = %v from step %d of %s = %v: %v", fidelity, long, reports[i].Step, fidelity, short, err)
	}
	for _, k := range append([]string{objective}, same...) {
		if g, w := got.Metrics[k], want.Metrics[k]; g != w || !(g == g) {
			t.Errorf("continued from %s = %v: %s = %v, uninterrupted %v", fidelity, short, k, g, w)
		}
	}
}
