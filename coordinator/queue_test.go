package coordinator_test

import (
	"fmt"
	"testing"
	"time"

	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/clustertest"
)

const queueSpec = `
name: queued
method: quadratic
objective: {metric: val_loss, direction: minimize}
space:
  x: {range: [0, 15], count: 16}
seeds: [0, 1]
fixed:
  sleep: 0.15
resources: {cpu: 0.5, memory: 64MiB}
timeout: 30s
`

// TestQueueAhead runs short trials on an agent that offers a queue: the
// leader keeps more attempts on it than it has slots once it has seen how
// short the trials are, yet no more run at once than the slots, and every
// trial still runs exactly once. A leader told that these trials are too
// long to queue never sends more than the slots.
func TestQueueAhead(t *testing.T) {
	for _, tc := range []struct {
		name       string
		queueBelow time.Duration
		wantAhead  bool
	}{
		{"short trials queue", 0, true},
		{"long trials do not", 50 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := clustertest.New(t)
			cl.AgentQueue = 1
			q := newQuadratic()
			cl.StartCoordinator("c1", func(c *coordinator.Config) { c.QueueBelow = tc.queueBelow })
			cl.StartAgent("a1", cpuNode(1), clustertest.InProcess{"quadratic": q})
			client := cl.Client()
			submit(t, client, queueSpec)
			// Sample how many attempts the leader has out while the
			// study runs.
			peakOut, peakRunning := 0, 0
			deadline := time.Now().Add(60 * time.Second)
			for {
				st, err := client.Status(t.Context(), "queued")
				if err != nil {
					t.Fatal(err)
				}
				if len(st.Studies) != 1 {
					t.Fatalf("status: %d studies", len(st.Studies))
				}
				c := st.Studies[0].Counts
				peakOut = max(peakOut, c["dispatched"]+c["running"])
				for _, n := range st.Nodes {
					peakRunning = max(peakRunning, n.Running)
				}
				if c["succeeded"] == 32 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("study unfinished: %v", c)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// One CPU at 0.5 per trial: two slots, and as many queued.
			if p := q.peak.Load(); p > 2 {
				t.Errorf("%d trials ran at once, want at most 2 (the slots)", p)
			}
			if peakRunning > 2 {
				t.Errorf("status showed %d attempts running on the agent, want at most its 2 slots (queued ones wait)", peakRunning)
			}
			if tc.wantAhead && (peakOut <= 2 || peakOut > 4) {
				t.Errorf("at most %d attempts out at once, want 3 or 4 (2 slots and a queue of 2)", peakOut)
			}
			if !tc.wantAhead && peakOut > 2 {
				t.Errorf("%d attempts out at once, want at most the 2 slots", peakOut)
			}
			for id, tr := range results(t, client, "queued") {
				if n := q.attempts(id); n != 1 || len(tr.Attempts) != 1 || tr.Result == nil {
					t.Errorf("trial %s ran %d times with %d attempts, want once", id, n, len(tr.Attempts))
				}
			}
			t.Logf("peak attempts out %d, peak running %d", peakOut, q.peak.Load())
		})
	}
}

// An agent frees an attempt's resources before it publishes the outcome,
// and keeps listing the attempt in heartbeats until JetStream acknowledges
// the outcome. Once the leader has that outcome, the listed attempt must
// not count as occupying the agent, or the slot idles until a heartbeat
// without it; here, where the agent never drops it, forever.
func TestReportedOutcomeFreesItsSlot(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	nc := cl.Conn("fake-agent")
	fake := startFakeAgent(t, nc, "fake", cpuNode(1))
	client := cl.Client()
	submit(t, client, oneTrialSpec)
	reportSuccess(t, nc, fake.first(t))
	cl.WaitDone(client, "one", 10*time.Second)
	// The fake agent still lists the finished attempt in every heartbeat
	// (one each 200 ms); a study submitted now must get the slot.
	time.Sleep(time.Second)
	submit(t, client, replace(oneTrialSpec, "name: one", "name: two"))
	clustertest.WaitFor(t, 5*time.Second, func() error {
		if sent := fake.sent(); len(sent) < 2 {
			return fmt.Errorf("dispatched %v; the second trial waits behind a finished attempt", sent)
		}
		return nil
	})
}
