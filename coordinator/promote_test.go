package coordinator_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/plugins/methods/charlm"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
)

// promoteSpec is promotion ASHA over tokens on the synthetic law, with the
// configurations of halvingSpec: nine weight decays at 2e7 tokens and
// rungs at 6e7 and 1.8e8. Each trial takes the whole agent, so trials run
// one at a time and both studies see their results in the same order.
func promoteSpec(name string, cont bool) string {
	return fmt.Sprintf(`name: %s
method: synthetic
space:
  weight_decay: {range: [0.01, 1], count: 9, scale: log}
fixed: {params: 1e7, tokens: 2e7, noise: 0.01, checkpoint_every: 10, step_tokens: 1e6}
derived:
  unique_tokens: tokens
resources: {cpu: 2, memory: 16MiB}
retries: 2
budget: {flops: 1e20}
search:
  asha: {fidelity: tokens, rungs: [2e7, 6e7, 1.8e8], eta: 3, promote: true, continue: %v}
`, name, cont)
}

// oneAtATime is a cluster whose one agent runs one trial at a time, with
// no trial queued on it ahead: the order of results is the order of the
// queue, so promotion ASHA decides the same with and without continue.
func oneAtATime(t *testing.T, runner clustertest.InProcess) *clustertest.Cluster {
	t.Helper()
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", func(c *node.CoordinatorConfig) { c.QueueBelow = -1 })
	cl.StartAgent("a1", cpuNode(2), runner)
	return cl
}

// TestASHAPromotionContinues runs promotion ASHA twice, restarting each
// promotion from step 0 and continuing it from the rung below's last
// checkpoint: the same trials must run with the same results, every
// promotion must continue, the budget must count the lower rungs' compute
// once, and no checkpoint may be left behind. While the continuing study
// runs, the trials that wait for a promotion show as paused; none does
// once it is over.
func TestASHAPromotionContinues(t *testing.T) {
	cl := oneAtATime(t, clustertest.InProcess{"synthetic": synthetic.New()})
	client := cl.Client()
	submit(t, client, promoteSpec("restart", false))
	st := cl.WaitDone(client, "restart", 2*time.Minute)
	submit(t, client, promoteSpec("continue", true))
	// Status and results are two requests: a study that moves on between
	// them (a loaded machine answers late) is polled again.
	sawPaused := false
	for deadline := time.Now().Add(2 * time.Minute); !sawPaused && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r, err := client.Status(t.Context(), "continue")
		if err != nil || len(r.Studies) == 0 {
			continue
		}
		s := r.Studies[0]
		if s.Done() {
			break
		}
		if s.Paused == 0 {
			continue
		}
		res, err := client.Results(t.Context(), "continue")
		if err != nil {
			continue
		}
		for _, tr := range res.Trials {
			if tr.Paused {
				sawPaused = true
				if tr.State != "succeeded" || len(tr.Checkpoints) == 0 || tr.Shown() != "paused" {
					t.Errorf("paused trial %s is %s (shown %s) with %d checkpoints, want succeeded with its last", tr.ID, tr.State, tr.Shown(), len(tr.Checkpoints))
				}
			}
		}
	}
	if !sawPaused {
		t.Error("no trial showed as paused while the continuing study ran")
	}
	want := st.Counts["succeeded"]
	if want <= 9 {
		t.Fatalf("restarting: %d trials succeeded, want promotions past the nine of the first rung", want)
	}
	compareContinuing(t, cl, want, want-9)
	for _, name := range []string{"restart", "continue"} {
		promotedFirst(t, name, results(t, client, name), 2e7)
	}
	for _, name := range []string{"restart", "continue"} {
		r, err := client.Status(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if n := r.Studies[0].Paused; n != 0 {
			t.Errorf("%s: %d trials paused after the study", name, n)
		}
		top := 0
		for _, tr := range results(t, client, name) {
			if tr.Paused {
				t.Errorf("%s: trial %s shows as paused after the study", name, tr.ID)
			}
			if tr.Params["tokens"] == 1.8e8 {
				top++
			}
		}
		if top == 0 {
			t.Errorf("%s: no configuration reached the top rung", name)
		}
	}
}

// TestASHAPromotionContinuesCharlm is TestASHAPromotionContinues on charlm
// under its constant schedule: six learning rates at 6,400 characters,
// promoted to 19,200 and 57,600.
func TestASHAPromotionContinuesCharlm(t *testing.T) {
	cl := oneAtATime(t, clustertest.InProcess{"charlm": charlm.New()})
	spec := func(name string, cont bool) string {
		return fmt.Sprintf(`name: %s
method: charlm
space:
  lr: [0.001, 0.003, 0.01, 0.02, 0.03, 0.06]
fixed: {width: 32, context: 4, embed: 8, unique_tokens: 20000, tokens: 6400, batch: 64, eval_tokens: 2000, report_every: 50, checkpoint_every: 50, schedule: constant, dropout: 0.1}
seeds: [4]
resources: {cpu: 2, memory: 256MiB}
budget: {flops: 1e20}
search:
  asha: {fidelity: tokens, rungs: [6400, 19200, 57600], eta: 3, promote: true, continue: %v}
`, name, cont)
	}
	client := cl.Client()
	submit(t, client, spec("restart", false))
	st := cl.WaitDone(client, "restart", 3*time.Minute)
	want := st.Counts["succeeded"]
	if want <= 6 {
		t.Fatalf("restarting: %d trials succeeded, want promotions past the six of the first rung", want)
	}
	submit(t, client, spec("continue", true))
	compareContinuing(t, cl, want, want-6)
}

// TestHyperbandContinues is TestASHAPromotionContinues for asynchronous
// Hyperband: 27 weight decays dealt to three brackets that start at 2e7,
// 6e7 and 1.8e8 tokens. Restarting and continuing must run the same
// trials, in the same brackets, with the same results.
func TestHyperbandContinues(t *testing.T) {
	cl := oneAtATime(t, clustertest.InProcess{"synthetic": synthetic.New()})
	client := cl.Client()
	spec := func(name string, cont bool) string {
		s := strings.Replace(promoteSpec(name, cont), "count: 9", "count: 27", 1)
		return strings.Replace(s, "asha: {fidelity: tokens, rungs: [2e7, 6e7, 1.8e8], eta: 3, promote: true,", "hyperband: {fidelity: tokens, rungs: [2e7, 6e7, 1.8e8], eta: 3,", 1)
	}
	submit(t, client, spec("restart", false))
	st := cl.WaitDone(client, "restart", 2*time.Minute)
	submit(t, client, spec("continue", true))
	want := st.Counts["succeeded"]
	if want <= 27 {
		t.Fatalf("restarting: %d trials succeeded, want promotions past the 27 configurations", want)
	}
	// Promotions are the trials beyond each configuration's first.
	compareContinuing(t, cl, want, want-27)
	starts := map[int]float64{}
	for _, tr := range results(t, client, "continue") {
		if tr.Bracket < 1 || tr.Bracket > 3 {
			t.Fatalf("trial %s has bracket %d", tr.ID, tr.Bracket)
		}
		if f := tr.Params["tokens"].(float64); starts[tr.Bracket] == 0 || f < starts[tr.Bracket] {
			starts[tr.Bracket] = f
		}
	}
	if starts[1] != 2e7 || starts[2] != 6e7 || starts[3] != 1.8e8 {
		t.Errorf("brackets start at %v, want 2e7, 6e7 and 1.8e8", starts)
	}
}

// promotedFirst checks that each promotion of a study that runs one trial
// at a time ran before any first-rung trial waiting when it was made: no
// first-rung trial was dispatched between a promotion's creation and its
// own first dispatch.
func promotedFirst(t *testing.T, name string, trials map[string]api.Trial, first float64) {
	t.Helper()
	for id, p := range trials {
		if p.Params["tokens"] == first || len(p.Attempts) == 0 {
			continue
		}
		start := p.Attempts[0].Dispatched
		for oid, o := range trials {
			if o.Params["tokens"] != first || len(o.Attempts) == 0 {
				continue
			}
			if d := o.Attempts[0].Dispatched; d.After(p.Created) && d.Before(start) {
				t.Errorf("%s: first-rung trial %s was dispatched at %v, after promotion %s was made (%v) and before it ran (%v)", name, oid, d, id, p.Created, start)
			}
		}
	}
}

// TestASHAPromotionSurvivesFailover kills the leader while promotion ASHA
// with continue runs, after its first promotions: the new leader rebuilds
// the rungs and the queue from the records alone, and the study ends with
// the same trials and results as a run without the fault.
func TestASHAPromotionSurvivesFailover(t *testing.T) {
	cl := clustertest.New(t)
	queueNone := func(c *node.CoordinatorConfig) { c.QueueBelow = -1 }
	first := cl.StartCoordinator("c1", queueNone)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"synthetic": synthetic.New()})
	client := cl.Client()
	submit(t, client, promoteSpec("killed", true))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no two promotions within a minute")
		}
		r, err := client.Status(t.Context(), "killed")
		if err == nil && len(r.Studies) == 1 && len(r.Studies[0].Decisions) >= 2 {
			if r.Studies[0].Done() {
				t.Fatal("the study ended before the leader could be killed")
			}
			break
		}
	}
	first.Kill()
	cl.StartCoordinator("c2", queueNone)
	cl.WaitDone(client, "killed", 2*time.Minute)
	submit(t, client, promoteSpec("reference", true))
	cl.WaitDone(client, "reference", 2*time.Minute)
	killed, ref := results(t, client, "killed"), results(t, client, "reference")
	if len(killed) != len(ref) {
		t.Errorf("%d trials after the failover, %d without it", len(killed), len(ref))
	}
	for id, r := range ref {
		k, ok := killed[id]
		if !ok {
			t.Errorf("trial %s (%v) ran without the failover, not with it: the decisions differ", id, r.Params)
			continue
		}
		if k.Result == nil || *k.Result.Objective != *r.Result.Objective {
			t.Errorf("trial %s: result %+v after the failover, %v without", id, k.Result, *r.Result.Objective)
		}
	}
	waitNoBlobs(t, cl, "killed")
}
