package coordinator_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/methods/charlm"
)

// halvingSpec is successive halving over tokens on the synthetic law:
// nine weight decays at 2e7 tokens, then 6e7 and 1.8e8, with a
// checkpoint every 10 steps. step sets how the method counts its steps:
// step_tokens lets a longer run continue a shorter one, steps does not.
func halvingSpec(name string, cont bool, step string) string {
	return fmt.Sprintf(`name: %s
method: synthetic
space:
  weight_decay: {range: [0.01, 1], count: 9, scale: log}
fixed: {params: 1e7, tokens: 2e7, noise: 0.01, checkpoint_every: 10, %s}
derived:
  unique_tokens: tokens
resources: {cpu: 0.5, memory: 16MiB}
retries: 2
budget: {flops: 1e20}
search:
  halving: {fidelity: tokens, max: 1.8e8, eta: 3, continue: %v}
`, name, step, cont)
}

// TestHalvingContinues runs successive halving twice on one cluster, once
// restarting each promotion from step 0 and once continuing it from the
// lower rung's last checkpoint: both must promote and stop the same
// trials with the same results, bit for bit, while continuing spends the
// lower rungs' compute once (the budget counts what each trial spent
// after its checkpoint), and neither leaves a checkpoint behind.
func TestHalvingContinues(t *testing.T) {
	cl, client := syntheticCluster(t)
	submit(t, client, halvingSpec("restart", false, "step_tokens: 1e6"))
	submit(t, client, halvingSpec("continue", true, "step_tokens: 1e6"))
	compareContinuing(t, cl, 9+3+1, 3+1)
}

// TestHalvingContinuesCharlm is TestHalvingContinues on charlm under its
// constant schedule: three learning rates at 6,400 characters, the best
// continued to 19,200.
func TestHalvingContinuesCharlm(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"charlm": charlm.New()})
	spec := func(name string, cont bool) string {
		return fmt.Sprintf(`name: %s
method: charlm
space:
  lr: [0.003, 0.01, 0.03]
fixed: {width: 32, context: 4, embed: 8, unique_tokens: 20000, tokens: 6400, batch: 64, eval_tokens: 2000, report_every: 50, checkpoint_every: 50, schedule: constant, dropout: 0.1}
seeds: [4]
resources: {cpu: 1, memory: 256MiB}
budget: {flops: 1e20}
search:
  halving: {fidelity: tokens, max: 19200, eta: 3, continue: %v}
`, name, cont)
	}
	submit(t, cl.Client(), spec("restart", false))
	submit(t, cl.Client(), spec("continue", true))
	compareContinuing(t, cl, 3+1, 1)
}

// compareContinuing checks the studies "restart" and "continue" of cl,
// which differ only in halving's continue: the same trials (want of them)
// with the same results, promotions (continued of them) that continue
// their configuration's run at the rung below from its last checkpoint,
// and a budget that counts the lower rungs' compute once.
func compareContinuing(t *testing.T, cl *clustertest.Cluster, want, continued int) {
	t.Helper()
	client := cl.Client()
	byStudy := map[string]map[string]api.Trial{}
	used := map[string]float64{}
	for _, name := range []string{"restart", "continue"} {
		st := cl.WaitDone(client, name, 2*time.Minute)
		if st.Counts["succeeded"] != want {
			t.Fatalf("%s: counts %v, want %d succeeded", name, st.Counts, want)
		}
		byStudy[name] = results(t, client, name)
		used[name] = st.Budget.Used
	}
	restart, cont := byStudy["restart"], byStudy["continue"]
	fidelity := "tokens"
	wantSaved, total, n := 0.0, 0.0, 0
	var best string
	for id, r := range restart {
		c, ok := cont[id]
		if !ok {
			t.Fatalf("trial %s (%v) ran when restarting, not when continuing: the decisions differ", id, r.Params)
		}
		if math.Float64bits(*c.Result.Objective) != math.Float64bits(*r.Result.Objective) {
			t.Errorf("trial %s: %v continuing, %v restarting", id, *c.Result.Objective, *r.Result.Objective)
		}
		total += r.Result.Metrics["flops"]
		if r.From != nil {
			t.Errorf("trial %s continues %s though the search restarts promotions", id, r.From.Trial)
		}
		f := c.From
		if f == nil {
			continue
		}
		if !f.Resumed || f.Dropped != "" {
			t.Errorf("promoted trial %s: continuation %+v, want one resumed", id, f)
			continue
		}
		n++
		lower := cont[f.Trial]
		if lower.Params[fidelity].(float64)*3 != c.Params[fidelity].(float64) {
			t.Errorf("trial %s (%v) continues %s (%v), not its configuration at the rung below", id, c.Params, f.Trial, lower.Params)
		}
		if want := lower.Attempts[len(lower.Attempts)-1]; f.Checkpoint.Attempt != want.N || f.Checkpoint.Metrics["flops"] != lower.Result.Metrics["flops"] {
			t.Errorf("trial %s continues from step %d (flops %g), want the lower run's end (flops %g)", id, f.Checkpoint.Step, f.Checkpoint.Metrics["flops"], lower.Result.Metrics["flops"])
		}
		a := c.Attempts[len(c.Attempts)-1]
		if a.StartStep != f.Checkpoint.Step || !slices.ContainsFunc(a.Notes, func(n string) bool { return strings.Contains(n, "continues trial "+f.Trial) }) {
			t.Errorf("trial %s: attempt started after step %d with notes %q, want after %d with a note naming %s", id, a.StartStep, a.Notes, f.Checkpoint.Step, f.Trial)
		}
		wantSaved += lower.Result.Metrics["flops"]
		if best == "" || c.Params[fidelity].(float64) > cont[best].Params[fidelity].(float64) {
			best = id
		}
	}
	if n != continued {
		t.Errorf("%d promotions continued, want %d", n, continued)
	}
	if math.Abs(used["restart"]-total) > 1e-9*total {
		t.Errorf("restarting: the budget counts %g FLOPs, the trials report %g", used["restart"], total)
	}
	if want := total - wantSaved; math.Abs(used["continue"]-want) > 1e-9*total {
		t.Errorf("continuing: the budget counts %g FLOPs, want %g (%g less the lower rungs' %g)", used["continue"], want, total, wantSaved)
	}
	t.Logf("continuing spent %.1f%% less compute than restarting (%.4g of %.4g FLOPs), with the same %d trials and results; the winner %v (%s %.6g)",
		100*(1-used["continue"]/used["restart"]), used["continue"], used["restart"], len(restart), cont[best].Params, "objective", *cont[best].Result.Objective)
	for name, trials := range byStudy {
		for id, tr := range trials {
			if len(tr.Checkpoints) > 0 {
				t.Errorf("%s: trial %s keeps %d checkpoint records after the study", name, id, len(tr.Checkpoints))
			}
		}
		waitNoBlobs(t, cl, name)
	}
}

// TestContinuationRefusedStartsOver has the search continue promotions
// of a method run that cannot be continued (synthetic counting steps, not
// step_tokens): the first attempt of each promotion fails with the
// method's reason, the trial records why it stops continuing, and its
// next attempt starts from scratch to the result restarting gives.
func TestContinuationRefusedStartsOver(t *testing.T) {
	cl, client := syntheticCluster(t)
	submit(t, client, halvingSpec("plain", false, "steps: 20"))
	submit(t, client, halvingSpec("refused", true, "steps: 20"))
	cl.WaitDone(client, "plain", 90*time.Second)
	st := cl.WaitDone(client, "refused", 90*time.Second)
	if st.Counts["succeeded"] != 13 {
		t.Fatalf("counts %v, want 13 succeeded", st.Counts)
	}
	plain, refused := results(t, client, "plain"), results(t, client, "refused")
	dropped := 0
	for id, tr := range refused {
		p := plain[id]
		if math.Float64bits(*tr.Result.Objective) != math.Float64bits(*p.Result.Objective) {
			t.Errorf("trial %s: %v, restarting gives %v", id, *tr.Result.Objective, *p.Result.Objective)
		}
		if tr.From == nil {
			continue
		}
		dropped++
		if !strings.Contains(tr.From.Dropped, "start from scratch") || !strings.Contains(tr.From.Dropped, "step_tokens") || tr.From.Resumed {
			t.Errorf("trial %s: continuation %+v, want it dropped with the method's reason", id, tr.From)
		}
		if len(tr.Attempts) != 2 || tr.Attempts[0].State != api.AttemptFailed || tr.Attempts[1].StartStep != 0 {
			t.Errorf("trial %s: attempts %+v, want a failed one, then one from scratch", id, tr.Attempts)
		}
	}
	if dropped != 4 {
		t.Errorf("%d promotions tried to continue, want 4", dropped)
	}
	waitNoBlobs(t, cl, "refused")
}

// waitNoBlobs waits for the study's checkpoint blobs to be deleted.
func waitNoBlobs(t *testing.T, cl *clustertest.Cluster, study string) {
	t.Helper()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if left := storedCheckpoints(t, cl, study); len(left) > 0 {
			return fmt.Errorf("%s: %d checkpoints left in the store after the study: %v", study, len(left), left)
		}
		return nil
	})
}

// TestCancelledHalvingLetsGoOfHeldCheckpoints cancels a continuing search
// while its second rung runs: the checkpoints the first rung held for
// promotions, and the promotions' own, are all deleted.
func TestCancelledHalvingLetsGoOfHeldCheckpoints(t *testing.T) {
	cl, client := syntheticCluster(t)
	submit(t, client, halvingSpec("cut", true, "step_tokens: 1e6, sleep: 3"))
	clustertest.WaitFor(t, 60*time.Second, func() error {
		r, err := client.Results(t.Context(), "cut")
		if err != nil {
			return err
		}
		for _, tr := range r.Trials {
			if tr.From != nil && tr.State == "running" {
				return nil
			}
		}
		return fmt.Errorf("no promotion running yet (%d trials)", len(r.Trials))
	})
	if held := storedCheckpoints(t, cl, "cut"); len(held) < 3 {
		t.Errorf("%d checkpoints stored while the second rung runs, want at least the 3 promoted runs' last", len(held))
	}
	if _, err := client.Cancel(t.Context(), api.CancelRequest{Study: "cut", Reason: "enough"}); err != nil {
		t.Fatal(err)
	}
	waitNoBlobs(t, cl, "cut")
	for id, tr := range results(t, client, "cut") {
		if len(tr.Checkpoints) > 0 {
			t.Errorf("trial %s (%s) keeps %d checkpoint records after the study was cancelled", id, tr.State, len(tr.Checkpoints))
		}
	}
}
