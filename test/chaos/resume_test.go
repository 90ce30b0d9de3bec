package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/sweep"
)

// succeededNow returns the trials recorded as succeeded, by ID.
func succeededNow(trials []api.Trial) map[string]api.Trial {
	out := map[string]api.Trial{}
	for _, t := range trials {
		if t.State == sweep.Succeeded {
			out[t.ID] = t
		}
	}
	return out
}

// checkKept reports every trial that had succeeded before an interruption
// and was run again or recorded differently after it.
func checkKept(before map[string]api.Trial, after []api.Trial) []string {
	var v []string
	for _, t := range after {
		b, ok := before[t.ID]
		if !ok {
			continue
		}
		if t.Attempt != b.Attempt || t.Result == nil || b.Result == nil ||
			t.Result.Attempt != b.Result.Attempt || !t.Result.Recorded.Equal(b.Result.Recorded) {
			v = append(v, fmt.Sprintf("trial %s finished before the interruption (attempt %d) but was run or recorded again (attempt %d)", t.ID, b.Attempt, t.Attempt))
		}
	}
	return v
}

// TestResumeWholeDeployment stops everything at once mid-study (NATS and
// etcd clusters, coordinators, agents: a power cut), starts it all again
// from its data directories, and checks the study finishes with the
// results of an uninterrupted run, nothing finished run again.
func TestResumeWholeDeployment(t *testing.T) {
	requireServers(t)
	checkNoLeftovers(t, binPath)
	dir := workDir(t)
	d := newDeployment(t, dir, topology{natsServers: 3, etcdMembers: 3, coordinators: 2, agents: 3, agentCPUs: 2})
	const study = "resume"
	spec := chaosSpec(study)
	want, err := reference(spec)
	if err != nil {
		t.Fatal(err)
	}
	d.submit(study, spec)
	// Let about a third finish.
	var before map[string]api.Trial
	deadline := time.Now().Add(2 * time.Minute)
	for {
		before = succeededNow(d.trials(study))
		if len(before) >= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d trials succeeded after 2 minutes", len(before))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Everything dies at once.
	all := append(append([]*proc{}, d.agents...), d.coords...)
	for _, s := range d.nats.servers {
		all = append(all, s.proc)
	}
	for _, m := range d.etcd.members {
		all = append(all, m.proc)
	}
	for _, p := range all {
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	}
	for _, p := range all {
		p.kill()
	}
	// Read what etcd held at the cut; the snapshot above may be older.
	t.Logf("stopped everything with %d of 300 trials seen succeeded", len(before))
	time.Sleep(2 * time.Second)

	start := time.Now()
	for _, s := range d.nats.servers {
		s.start()
	}
	for _, m := range d.etcd.members {
		m.start()
	}
	d.nats.waitJetStream(t, time.Minute)
	before = succeededNow(d.trials(study))
	for _, p := range d.coords {
		p.start()
	}
	for _, p := range d.agents {
		p.start()
	}
	d.waitDone(study, 3*time.Minute)
	t.Logf("resumed and finished in %s", time.Since(start).Round(time.Millisecond))
	trials := d.trials(study)
	reportViolations(t, append(append(checkTrials(trials, want), checkKept(before, trials)...), checkHistory(d.nc, study, trials, chaosSteps)...))
	st := stats(trials)
	// Every outcome an agent published was in JetStream when the power
	// went: the restarted leader must receive it, not give up on it.
	for why, n := range st.staleWhy {
		if strings.Contains(why, "outcome never arrived") {
			t.Errorf("%d attempts went stale after the restart: %s", n, why)
		}
	}
	t.Logf("%d trials (%d finished before the cut), %d attempts, %d stale: %v", st.trials, len(before), st.attempts, st.stale, st.staleWhy)
}

// devSpec is a study for `asymptote dev`: 120 trials of about a second.
func devSpec(name string) string {
	return fmt.Sprintf(`name: %s
method: synthetic
objective: {metric: val_loss, direction: minimize}
space:
  params: {range: [1e6, 1e9], count: 10, scale: log}
  weight_decay: [0.01, 0.1, 1.0]
  sleep: [0.5, 1.5]
fixed:
  unique_tokens: 2e10
  epochs: 1
  noise: 0.02
derived:
  tokens: unique_tokens * epochs
seeds: [0, 1]
resources: {cpu: 0.5, memory: 64MiB}
retries: 2
timeout: 1m
`, name)
}

// TestDevResume interrupts `asymptote dev STUDY` twice, once with SIGINT
// (Ctrl-C) and once with SIGKILL, runs it again on the same -data-dir each
// time, and checks the study finishes with the results of an
// uninterrupted run, nothing finished run again.
func TestDevResume(t *testing.T) {
	checkNoLeftovers(t, binPath)
	dir := workDir(t)
	const study = "devresume"
	spec := devSpec(study)
	specPath := filepath.Join(dir, study+".yaml")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := reference(spec)
	if err != nil {
		t.Fatal(err)
	}
	port := freePorts(t, 1)[0]
	dataDir := filepath.Join(dir, "data")
	dev := func(args ...string) *proc {
		argv := append([]string{binPath, "dev"}, args...)
		argv = append(argv, "-data-dir", dataDir, "-nats-port", fmt.Sprint(port), "-agents", "2", "-cpus", "2", "-heartbeat-grace", "3s", "-lease-ttl", "2s")
		return newProc(t, dir, "dev", argv)
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	// succeeded asks the running dev server which trials have finished.
	succeeded := func() map[string]api.Trial {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err != nil {
			return nil
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := bus.NewClient(nc, 5*time.Second).Results(ctx, study)
		if err != nil {
			return nil
		}
		return succeededNow(r.Trials)
	}
	interrupted := map[string]api.Trial{}
	for _, step := range []struct {
		name  string
		after int
		stop  func(p *proc)
	}{
		{"SIGINT", 30, func(p *proc) { p.interrupt(30 * time.Second) }},
		{"SIGKILL", 70, func(p *proc) { p.kill() }},
	} {
		p := dev(specPath)
		p.start()
		var seen map[string]api.Trial
		deadline := time.Now().Add(2 * time.Minute)
		for len(seen) < step.after {
			if time.Now().After(deadline) || !p.running() {
				t.Fatalf("%s step: %d trials succeeded, want %d\n%s", step.name, len(seen), step.after, p.tail(3000))
			}
			time.Sleep(200 * time.Millisecond)
			if s := succeeded(); s != nil {
				seen = s
			}
		}
		step.stop(p)
		for id, tr := range seen {
			interrupted[id] = tr
		}
		t.Logf("%s after %d trials succeeded", step.name, len(seen))
	}

	// The third run finishes the study and exits 0.
	p := dev(specPath)
	p.start()
	select {
	case <-p.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("asymptote dev did not finish the study\n%s", p.tail(3000))
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("asymptote dev exited %d after resuming\n%s", code, p.tail(3000))
	}
	p.kill()

	// Serve the finished state and read it back.
	p = dev()
	p.start()
	var trials []api.Trial
	deadline := time.Now().Add(time.Minute)
	for trials == nil {
		if time.Now().After(deadline) {
			t.Fatalf("cannot read results from the resumed data directory\n%s", p.tail(3000))
		}
		time.Sleep(200 * time.Millisecond)
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err != nil {
			continue
		}
		r, err := bus.NewClient(nc, 5*time.Second).Results(context.Background(), study)
		nc.Close()
		if err == nil {
			trials = r.Trials
		}
	}
	p.interrupt(30 * time.Second)
	reportViolations(t, append(checkTrials(trials, want), checkKept(interrupted, trials)...))
	st := stats(trials)
	t.Logf("%d trials, %d attempts, %d stale: %v", st.trials, st.attempts, st.stale, st.staleWhy)
}
