package chaos

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/checkpoint"
)

// Long trials under faults: each trial trains for 20 to 30 seconds and
// saves a checkpoint every 10 of its 100 steps (2 to 3 seconds), so every
// fault strikes trials mid-run. The invariants are those of the short
// chaos study (one result per trial, equal to the fault-free run's) plus
// what checkpoints promise: every attempt after the first resumes from the
// latest checkpoint recorded, no fault costs a trial more than one
// checkpoint interval plus the upload in flight, a preemption costs at
// most the step in progress, and no checkpoint is left in the store once
// the study is done.

const (
	longSteps = 100
	longEvery = 10
)

func longSpec(name string) string {
	return fmt.Sprintf(`name: %s
method: synthetic
space:
  params: [1e7, 1e8, 1e9]
  weight_decay: [0.03, 0.3]
  sleep: [20, 30]
fixed:
  unique_tokens: 2e10
  epochs: 1
  noise: 0.02
  steps: %d
  checkpoint_every: %d
derived:
  tokens: unique_tokens * epochs
resources: {cpu: 1, memory: 64MiB}
retries: 3
timeout: 5m
`, name, longSteps, longEvery)
}

// longFaults are the faults long trials must survive; each strikes at
// least once.
var longFaults = serial([]fault{
	faultNamed("kill-agent"),
	{name: "sigterm-agent", class: "agents", apply: func(c *chaos) string {
		p := c.d.agents[c.rng.IntN(len(c.d.agents))]
		start := time.Now()
		p.stop(20 * time.Second)
		took := time.Since(start)
		down := c.dur(300*time.Millisecond, 2*time.Second)
		time.Sleep(down)
		p.start()
		return fmt.Sprintf("SIGTERM %s (exited after %s), restarted after %s", p.name, took.Round(time.Millisecond), down)
	}},
	{name: "drain-agent", class: "agents", apply: func(c *chaos) string {
		p := c.d.agents[c.rng.IntN(len(c.d.agents))]
		r, err := bus.NewClient(c.d.nc, 5*time.Second).Drain(context.Background(), p.name)
		if err != nil {
			return fmt.Sprintf("drain %s: %v", p.name, err)
		}
		if !p.waitExit(20 * time.Second) {
			p.kill()
			c.t.Errorf("%s did not exit within 20s of a drain", p.name)
		}
		p.start()
		return fmt.Sprintf("drain %s (%d attempts preempted), restarted", p.name, r.Preempted)
	}},
	faultNamed("kill-leader"),
	{name: "restart-deployment", class: "coordinators", apply: func(c *chaos) string {
		// Everything at once, as a power cut or a cluster upgrade does:
		// agents and coordinators die, the servers restart from their
		// data directories, then everything starts again.
		for _, p := range append(append([]*proc{}, c.d.agents...), c.d.coords...) {
			p.kill()
		}
		for i := range c.d.nats.servers {
			c.d.nats.restart(c.t, i, 0)
		}
		for i := range c.d.etcd.members {
			c.d.etcd.restart(c.t, i, 0)
		}
		c.d.nats.waitJetStream(c.t, 60*time.Second)
		for _, p := range append(append([]*proc{}, c.d.coords...), c.d.agents...) {
			p.start()
		}
		return "SIGKILL every agent and coordinator, restart NATS and etcd, start everything"
	}},
})

// faultNamed returns one of the short study's faults.
func faultNamed(name string) fault {
	for _, f := range faults {
		if f.name == name {
			return f
		}
	}
	panic("no fault " + name)
}

// serial puts every fault in one class, so they strike one at a time: a
// whole-deployment restart touches every process another fault would,
// and one fault at a time says what each cost.
func serial(fs []fault) []fault {
	out := make([]fault, len(fs))
	for i, f := range fs {
		f.class = "deployment"
		out[i] = f
	}
	return out
}

// redone is one attempt's redone work: the steps the trial had reached,
// on any earlier attempt, before this attempt started, less the step it
// resumed after. It is attributed to how the attempt before it ended.
type redone struct {
	trial    string
	attempt  int
	after    api.AttemptState // how the previous attempt ended
	steps    int64
	frontier int64
	detail   string
}

// lostWork measures, for every attempt after a trial's first, how much
// work the trial had done that it did again. Attempts the leader had given
// up on but that ran on for a while (a dispatch that seemed unanswered)
// count only with the reports they made before the next attempt started.
func lostWork(trials []api.Trial, history map[attemptKey][]bus.MetricsReport) []redone {
	var out []redone
	for _, t := range trials {
		for j := 1; j < len(t.Attempts); j++ {
			a := t.Attempts[j]
			if a.Started == nil {
				continue // never ran
			}
			var frontier int64
			for _, prev := range t.Attempts[:j] {
				for _, r := range history[attemptKey{t.ID, prev.N}] {
					if r.Time.Before(*a.Started) {
						frontier = max(frontier, r.Step)
					}
				}
			}
			prev := t.Attempts[j-1]
			out = append(out, redone{
				trial: t.ID, attempt: a.N, after: prev.State, steps: max(0, frontier-a.StartStep), frontier: frontier,
				detail: fmt.Sprintf("attempt %d after %s %d (%s): reached %d before it started, resumed after %d (%s)",
					a.N, prev.State, prev.N, prev.Error, frontier, a.StartStep, a.Resume),
			})
		}
	}
	return out
}

func distribution(xs []int64) string {
	if len(xs) == 0 {
		return "none"
	}
	s := slices.Clone(xs)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("n=%d min=%d median=%d p90=%d max=%d", len(s), s[0], s[len(s)/2], s[len(s)*9/10], s[len(s)-1])
}

// TestChaosLongTrials runs long checkpointed trials on one NATS server and
// one etcd member with two coordinators and three agents under agent kills,
// SIGTERM preemptions, drains, leader kills and whole-deployment restarts.
func TestChaosLongTrials(t *testing.T) {
	requireServers(t)
	checkNoLeftovers(t, binPath)
	seed := chooseSeed(t)
	start := time.Now()
	d := newDeployment(t, workDir(t), topology{natsServers: 1, etcdMembers: 1, coordinators: 2, agents: 3, agentCPUs: 2})
	const study = "long"
	spec := longSpec(study)
	ref := referenceAsync(spec)
	c := newChaos(t, d, seed)
	r := d.submit(study, spec)
	t.Logf("submitted %d trials of %d steps, a checkpoint every %d", r.Total, longSteps, longEvery)
	c.run(study, 50*time.Second, longFaults)
	d.waitDone(study, 5*time.Minute)
	want, err := ref()
	if err != nil {
		t.Fatalf("reference run: %v", err)
	}
	trials := d.trials(study)
	v := append(checkTrials(trials, want), checkHistory(d.nc, study, trials, longSteps)...)
	for _, f := range longFaults {
		if c.injected[f.name] == 0 {
			v = append(v, "fault "+f.name+" never struck")
		}
	}
	history, err := readHistory(d.nc, study)
	if err != nil {
		t.Fatal(err)
	}
	lost := map[api.AttemptState][]int64{}
	for _, r := range lostWork(trials, history) {
		lost[r.after] = append(lost[r.after], r.steps)
		// A kill loses what was done since the last checkpoint recorded,
		// and the one being uploaded: at most two intervals of steps. A
		// preemption checkpoints first, so it loses at most the step in
		// progress, or an interval when the upload did not finish within
		// the agent's grace.
		bound := int64(longEvery)
		if r.after != api.AttemptPreempted {
			bound = 2 * longEvery
		}
		if r.steps > bound {
			v = append(v, fmt.Sprintf("trial %s redid %d steps, over %d: %s", r.trial, r.steps, bound, r.detail))
		}
	}
	resumed := 0
	for _, tr := range trials {
		for _, a := range tr.Attempts[1:] {
			if a.StartStep > 0 {
				resumed++
			}
		}
	}
	if len(lost[api.AttemptStale])+len(lost[api.AttemptPreempted]) > 0 && resumed == 0 {
		v = append(v, "attempts were lost but none resumed from a checkpoint")
	}
	v = append(v, orphanedCheckpoints(t, d, study)...)
	reportViolations(t, v)
	st := stats(trials)
	t.Logf("faults injected (%d):\n%s", c.total(), strings.Join(c.log, "\n"))
	t.Logf("steps redone per replaced attempt: stale (kills, restarts): %s; preempted (SIGTERM, drain): %s",
		distribution(lost[api.AttemptStale]), distribution(lost[api.AttemptPreempted]))
	t.Logf("%d trials, %d attempts (%d resumed from a checkpoint), %d stale; %d faults (%v); %d invariant violations; %s",
		st.trials, st.attempts, resumed, st.stale, c.total(), c.injected, len(v), time.Since(start).Round(time.Millisecond))
}

// orphanedCheckpoints returns a violation for each checkpoint left in the
// store of a finished study whose trials all succeeded: their records
// keep none, so none may remain (deletion runs in the background; a
// leader that died before it is followed by one that sweeps).
func orphanedCheckpoints(t *testing.T, d *deployment, study string) []string {
	js, err := jetstream.New(d.nc)
	if err != nil {
		return []string{err.Error()}
	}
	st, err := checkpoint.NewObject(context.Background(), js, checkpoint.ObjectConfig{Open: true})
	if err != nil {
		return []string{"open the checkpoint store: " + err.Error()}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		infos, err := st.List(context.Background(), study+"/")
		if err == nil && len(infos) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return []string{"list checkpoints: " + err.Error()}
			}
			var keys []string
			for _, i := range infos {
				keys = append(keys, i.Key)
			}
			return []string{fmt.Sprintf("%d checkpoints left in the store after the study: %v", len(keys), keys)}
		}
		time.Sleep(500 * time.Millisecond)
	}
}
