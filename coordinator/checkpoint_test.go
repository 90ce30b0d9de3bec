package coordinator_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/checkpoint"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/methods/charlm"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
	"asymptote.dev/asymptote/plugins/sdk"
)

// checkpointSpec is one long synthetic trial: 200 steps of 40ms, with a
// checkpoint every `every` steps (0: only when the agent asks).
func checkpointSpec(name string, every int) string {
	return fmt.Sprintf(`
name: %s
method: synthetic
space:
  params: [1e7]
fixed: {steps: 200, sleep: 8, noise: 0.05, checkpoint_every: %d}
seeds: [3]
resources: {cpu: 1, memory: 64MiB}
timeout: 2m
`, name, every)
}

// uninterrupted runs the spec's trial in this process with nothing
// stopping it, in the background (it takes its 8 seconds), and returns
// its result when asked.
func uninterrupted(t *testing.T, every int) func() map[string]float64 {
	t.Helper()
	done := make(chan map[string]float64, 1)
	go func() {
		res, err := synthetic.New().Run(context.Background(), &sdk.TrialRequest{TrialID: "ref", Attempt: 1, Seed: 3, Params: map[string]any{
			"params": 1e7, "steps": 200.0, "sleep": 8.0, "noise": 0.05, "checkpoint_every": float64(every),
		}}, func(sdk.Metrics) error { return nil })
		if err != nil {
			t.Error(err)
		}
		done <- res.Metrics
	}()
	return func() map[string]float64 { return <-done }
}

// onlyTrial waits for the study's one trial to satisfy cond.
func onlyTrial(t *testing.T, cl *clustertest.Cluster, study string, timeout time.Duration, cond func(api.Trial) error) api.Trial {
	t.Helper()
	client := cl.Client()
	var tr api.Trial
	clustertest.WaitFor(t, timeout, func() error {
		r, err := client.Results(context.Background(), study)
		if err != nil {
			return err
		}
		if len(r.Trials) != 1 {
			return fmt.Errorf("%d trials", len(r.Trials))
		}
		tr = r.Trials[0]
		return cond(tr)
	})
	return tr
}

func hasResult(tr api.Trial) error {
	if tr.Result == nil {
		return fmt.Errorf("trial %s", tr.State)
	}
	return nil
}

// storedCheckpoints lists the checkpoint blobs of a study in the object
// store the cluster's coordinator and agents share.
func storedCheckpoints(t *testing.T, cl *clustertest.Cluster, study string) []checkpoint.Info {
	t.Helper()
	js, err := jetstream.New(cl.Conn("store"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := checkpoint.NewObject(t.Context(), js, checkpoint.ObjectConfig{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := st.List(t.Context(), study+"/")
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func checkResumed(t *testing.T, cl *clustertest.Cluster, tr api.Trial, from int64, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if g := tr.Result.Metrics[k]; math.Float64bits(g) != math.Float64bits(w) {
			t.Errorf("result %s = %v, want %v (the uninterrupted run's) bit for bit", k, g, w)
		}
	}
	last := tr.Attempts[len(tr.Attempts)-1]
	if last.StartStep < from || !strings.Contains(last.Resume, "resumed from the checkpoint after step") {
		t.Errorf("last attempt started after step %d (%q), want at least %d", last.StartStep, last.Resume, from)
	}
	if len(tr.Checkpoints) != 0 {
		t.Errorf("a succeeded trial keeps %d checkpoint records, want none", len(tr.Checkpoints))
	}
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if left := storedCheckpoints(t, cl, tr.Study); len(left) > 0 {
			return fmt.Errorf("%d checkpoints left in the store after the trial succeeded: %v", len(left), left)
		}
		return nil
	})
}

// TestResumeAfterAgentKill kills the agent of a long trial without a word:
// the next attempt, on another agent, starts from the latest checkpoint
// recorded and ends with the uninterrupted run's result.
func TestResumeAfterAgentKill(t *testing.T) {
	ref := uninterrupted(t, 20)
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	doomed := cl.StartAgent("doomed", cpuNode(2), clustertest.InProcess{"synthetic": synthetic.New()})
	submit(t, cl.Client(), checkpointSpec("killed", 20))
	seen := onlyTrial(t, cl, "killed", 20*time.Second, func(tr api.Trial) error {
		if len(tr.Checkpoints) < 2 {
			return fmt.Errorf("%d checkpoints recorded", len(tr.Checkpoints))
		}
		return nil
	})
	if n := len(seen.Checkpoints); n > 2 {
		t.Errorf("%d checkpoints kept, want checkpoints.keep's default of 2", n)
	}
	doomed.Kill()
	cl.StartAgent("healthy", cpuNode(2), clustertest.InProcess{"synthetic": synthetic.New()})
	tr := onlyTrial(t, cl, "killed", 60*time.Second, hasResult)
	if tr.Attempts[0].State != api.AttemptStale {
		t.Errorf("first attempt %s, want stale", tr.Attempts[0].State)
	}
	checkResumed(t, cl, tr, seen.Checkpoints[len(seen.Checkpoints)-1].Step, ref())
}

// TestPreemptionSavesWork stops an agent as SIGTERM does: it asks the
// running method for a checkpoint, stores it, reports the attempt
// preempted, and the next attempt continues from where it stopped, though
// the method saves checkpoints only when asked.
// maxPreemptionLoss bounds the steps of 40 ms a preempted attempt runs
// past the checkpoint the agent asked for: 200 ms for the upload and the
// stop on a loaded machine.
const maxPreemptionLoss = 5

func TestPreemptionSavesWork(t *testing.T) {
	ref := uninterrupted(t, 0)
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	first := cl.StartAgent("first", cpuNode(2), clustertest.InProcess{"synthetic": synthetic.New()})
	submit(t, cl.Client(), checkpointSpec("preempted", 0))
	onlyTrial(t, cl, "preempted", 20*time.Second, func(tr api.Trial) error {
		if tr.State != "running" {
			return fmt.Errorf("trial %s", tr.State)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // about 50 steps in
	first.Stop()
	cl.StartAgent("second", cpuNode(2), clustertest.InProcess{"synthetic": synthetic.New()})
	tr := onlyTrial(t, cl, "preempted", 60*time.Second, hasResult)
	if len(tr.Attempts) != 2 || tr.Attempts[0].State != api.AttemptPreempted || tr.Preempted != 1 || tr.Failures != 0 {
		t.Errorf("attempts %+v, preempted %d, failures %d; want one preempted attempt, then one on the other agent, and no failure", tr.Attempts, tr.Preempted, tr.Failures)
	}
	checkResumed(t, cl, tr, 20, ref())
	// The work lost is what the first attempt did after its checkpoint:
	// the agent asked for one at once, so the step in progress and those
	// the method ran while the checkpoint uploaded and the stop reached
	// it; on an idle machine that is at most one 40 ms step, and a few
	// under load.
	js, err := jetstream.New(cl.Conn("history"))
	if err != nil {
		t.Fatal(err)
	}
	var reached int64
	if err := bus.History(t.Context(), js, tr.Study, tr.ID, func(r *bus.MetricsReport) error {
		if r.Attempt == 1 {
			reached = max(reached, r.Step)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resumed := tr.Attempts[len(tr.Attempts)-1].StartStep
	t.Logf("first attempt reached step %d; the second resumed after step %d", reached, resumed)
	if reached-resumed > maxPreemptionLoss {
		t.Errorf("preemption lost %d steps (reached %d, resumed after %d), want at most %d (the step in progress and the upload's)", reached-resumed, reached, resumed, maxPreemptionLoss)
	}
}

// TestCharlmResumesBitForBit kills the agent of a charlm trial (a real
// character language model with two members and dropout) after it has
// stored checkpoints: the attempt that resumes on another agent ends with
// the uninterrupted run's metrics, bit for bit.
func TestCharlmResumesBitForBit(t *testing.T) {
	params := map[string]any{
		"width": 32.0, "context": 4.0, "embed": 8.0, "unique_tokens": 20000.0, "tokens": 6.4e5,
		"batch": 64.0, "eval_tokens": 2000.0, "report_every": 500.0, "dropout": 0.2, "members": 2.0,
		"checkpoint_every": 1000.0,
	}
	refDone := make(chan map[string]float64, 1)
	go func() {
		res, err := charlm.New().Run(context.Background(), &sdk.TrialRequest{TrialID: "ref", Attempt: 1, Seed: 4, Threads: 1, Params: params},
			func(sdk.Metrics) error { return nil })
		if err != nil {
			t.Error(err)
			refDone <- nil
			return
		}
		refDone <- res.Metrics
	}()
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	methods := func() clustertest.InProcess { return clustertest.InProcess{"charlm": charlm.New()} }
	doomed := cl.StartAgent("doomed", cpuNode(1), methods())
	var fixed []string
	for k, v := range params {
		fixed = append(fixed, fmt.Sprintf("%s: %v", k, v))
	}
	submit(t, cl.Client(), "name: lm\nmethod: charlm\nfixed: {"+strings.Join(fixed, ", ")+"}\nseeds: [4]\nresources: {cpu: 1, memory: 256MiB}\ntimeout: 5m\n")
	seen := onlyTrial(t, cl, "lm", time.Minute, func(tr api.Trial) error {
		if len(tr.Checkpoints) < 2 {
			return fmt.Errorf("%d checkpoints recorded", len(tr.Checkpoints))
		}
		return nil
	})
	doomed.Kill()
	cl.StartAgent("healthy", cpuNode(1), methods())
	tr := onlyTrial(t, cl, "lm", 2*time.Minute, hasResult)
	want := <-refDone
	if want == nil {
		t.FailNow()
	}
	checkResumed(t, cl, tr, seen.Checkpoints[len(seen.Checkpoints)-1].Step, want)
}
