package chaos

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/sweep"
)

// faultySpec is a study of the faulty method, one trial per mode, without
// retries.
func faultySpec(name string, modes ...string) string {
	return fmt.Sprintf(`name: %s
method: faulty
objective: {metric: val_loss, direction: minimize}
space:
  mode: [%s]
seeds: [0]
resources: {cpu: 0.5, memory: 64MiB}
retries: 0
timeout: 4s
`, name, strings.Join(modes, ", "))
}

// TestMethodFaultsThroughAgent runs misbehaving methods through a real
// agent process beside a healthy study: each faulty attempt fails with a
// reason that says what happened, the agent keeps running the healthy
// trials, and no plugin process or child of one is left behind.
func TestMethodFaultsThroughAgent(t *testing.T) {
	requireServers(t)
	checkNoLeftovers(t, binPath)
	dir := workDir(t)
	d := newDeployment(t, dir, topology{natsServers: 1, etcdMembers: 1, coordinators: 1, agents: 1, agentCPUs: 4})
	agentPID := d.agents[0].pid()

	// Children that the fork mode starts report their pid as a metric.
	var (
		mu       sync.Mutex
		children []int
	)
	sub, err := d.nc.Subscribe(bus.SubjectMetrics+".>", func(m *nats.Msg) {
		var r bus.MetricsReport
		if bus.Decode(m.Data, &r) == nil && r.Values["child_pid"] > 0 {
			mu.Lock()
			children = append(children, int(r.Values["child_pid"]))
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	// What each mode must fail with: the reason names the fault.
	want := map[string]string{
		"crash": "exit",
		"panic": "panic",
		"hang":  "timed out",
		"fork":  "timed out",
	}
	d.submit("faults", faultySpec("faults", "crash", "panic", "hang", "fork", "flood"))
	healthy := strings.Replace(devSpec("healthy"), "seeds: [0, 1]", "seeds: [3]", 1)
	ref, err := reference(healthy)
	if err != nil {
		t.Fatal(err)
	}
	d.submit("healthy", healthy)
	d.waitDone("faults", 2*time.Minute)
	d.waitDone("healthy", 2*time.Minute)

	for _, tr := range d.trials("faults") {
		mode := fmt.Sprint(tr.Params["mode"])
		reason := tr.Error
		if n := len(tr.Attempts); n > 0 {
			reason += " | attempt: " + tr.Attempts[n-1].Error
		}
		t.Logf("mode %-6s -> %s: %s", mode, tr.State, firstLine(reason))
		if mode == "flood" {
			// 32 MiB on stderr is noise, not a failure: the agent keeps
			// a bounded tail and the trial's outcome stands.
			if !tr.State.Terminal() {
				t.Errorf("flood trial is %s, want terminal", tr.State)
			}
			continue
		}
		if tr.State != sweep.Failed {
			t.Errorf("mode %s: trial %s, want failed", mode, tr.State)
			continue
		}
		if !strings.Contains(strings.ToLower(reason), want[mode]) {
			t.Errorf("mode %s: reason %q does not say %q", mode, reason, want[mode])
		}
		for _, a := range tr.Attempts {
			if a.State == api.AttemptStale {
				t.Errorf("mode %s: attempt %d is stale; a method's fault is a failure, not a lost agent", mode, a.N)
			}
		}
	}
	reportViolations(t, checkTrials(d.trials("healthy"), ref))
	if pid := d.agents[0].pid(); pid != agentPID || !d.agents[0].running() {
		t.Errorf("the agent did not survive its methods' faults (pid %d, now %d)", agentPID, pid)
	}
	mu.Lock()
	forked := append([]int(nil), children...)
	mu.Unlock()
	if len(forked) == 0 {
		t.Errorf("the fork mode reported no child pid")
	}
	for _, pid := range forked {
		deadline := time.Now().Add(10 * time.Second)
		for pidAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if pidAlive(pid) {
			t.Errorf("the fork mode's child %d outlived its attempt", pid)
		}
	}

	// A plugin that exits before its handshake: an agent whose plugins
	// all do, and still runs the healthy method.
	d.agents[0].stop(15 * time.Second)
	// Agents pass methods only the environment they are told to
	// (-pass-env, here from the environment as ASYMPTOTE_PASS_ENV).
	early := d.newAgent("early", "ASYMPTOTE_FAULTY_STARTUP=exit_early", "ASYMPTOTE_PASS_ENV=ASYMPTOTE_FAULTY_STARTUP")
	early.start()
	d.submit("early", faultySpec("early", "ok"))
	d.waitDone("early", time.Minute)
	for _, tr := range d.trials("early") {
		reason := strings.ToLower(tr.Error)
		t.Logf("exit before handshake -> %s: %s", tr.State, firstLine(tr.Error))
		if tr.State != sweep.Failed || !(strings.Contains(reason, "handshake") || strings.Contains(reason, "exit")) {
			t.Errorf("exit_early: trial %s (%q), want failed naming the early exit", tr.State, tr.Error)
		}
	}
	healthy2 := strings.Replace(devSpec("healthy2"), "seeds: [0, 1]", "seeds: [5]", 1)
	ref2, err := reference(healthy2)
	if err != nil {
		t.Fatal(err)
	}
	d.submit("healthy2", healthy2)
	d.waitDone("healthy2", 2*time.Minute)
	reportViolations(t, checkTrials(d.trials("healthy2"), ref2))
	if !early.running() {
		t.Errorf("the agent died of plugins that exit before the handshake")
	}
}

// firstLine returns the first line of s, for logs.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
