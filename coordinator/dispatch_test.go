package coordinator_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/node"
)

// TestUnansweredDispatchThatRuns gives the leader a dispatch timeout no
// agent can meet, as a loaded host that answers late: every dispatch
// reaches the agent and runs, though its answer comes too late. The
// agent's heartbeats say it runs them, so each trial runs once, with one
// attempt; before, each late answer made the attempt stale and the trial
// ran again and again, until it failed as lost. (A dispatch whose
// microsecond passed before it was sent never reaches the agent; its
// attempt goes stale after two heartbeats, and the trial runs once all
// the same.)
func TestUnansweredDispatchThatRuns(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	cl.StartCoordinator("c1", func(c *node.CoordinatorConfig) { c.DispatchTimeout = time.Microsecond })
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": q})
	spec := replace(gridSpec, "resources: {cpu: 0.5, memory: 64MiB}", "resources: {cpu: 0.5, memory: 64MiB}\nfixed:\n  sleep: 0.3")
	client := cl.Client()
	submit(t, client, spec)
	st := cl.WaitDone(client, "grid", 60*time.Second)
	if st.Counts["succeeded"] != 12 {
		t.Fatalf("counts = %v, want 12 succeeded", st.Counts)
	}
	for id, tr := range results(t, client, "grid") {
		if n := q.attempts(id); n != 1 {
			t.Errorf("trial %s ran %d times, want once", id, n)
		}
		// A dispatch whose deadline passed before it was even sent never
		// reached the agent: that attempt, and only such, is stale.
		for _, a := range tr.Attempts[:len(tr.Attempts)-1] {
			if a.State != api.AttemptStale || a.Started != nil || !strings.Contains(a.Error, "do not list the attempt") {
				t.Errorf("trial %s: attempt %d is %s (%s), want stale, never started, its dispatch unanswered and unlisted", id, a.N, a.State, a.Error)
			}
		}
	}
}

// TestUnansweredDispatchThatNeverArrived has an agent that heartbeats but
// never answers nor takes its dispatches: after two heartbeats that do not
// list the attempt, it is stale with the reason, and the trial runs on an
// agent that works.
func TestUnansweredDispatchThatNeverArrived(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", func(c *node.CoordinatorConfig) { c.DispatchTimeout = 300 * time.Millisecond })
	client := cl.Client()
	// A silent agent: it listens on its dispatch subject (so the
	// request has a responder) but never answers, and heartbeats
	// running nothing.
	nc := cl.Conn("silent")
	sub, err := nc.Subscribe(bus.DispatchSubject("silent"), func(m *nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			hb := bus.Heartbeat{Node: "silent", Boot: "b", Resources: cpuNode(4), Methods: []string{"quadratic"}, Sent: time.Now()}
			data, _ := json.Marshal(&hb)
			nc.Request(bus.HeartbeatSubject("silent"), data, time.Second)
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		st, err := client.Status(t.Context(), "")
		if err != nil {
			return err
		}
		if len(st.Nodes) != 1 {
			return fmt.Errorf("%d nodes", len(st.Nodes))
		}
		return nil
	})
	spec := replace(gridSpec, "x: [0, 1, 2, 3, 4, 5]", "x: [0]")
	spec = replace(spec, "seeds: [0, 1]", "seeds: [0]")
	submit(t, client, spec)
	// The attempt on the silent agent goes stale; then a real agent
	// joins and runs the trial.
	clustertest.WaitFor(t, 20*time.Second, func() error {
		for _, tr := range results(t, client, "grid") {
			for _, a := range tr.Attempts {
				if a.State == api.AttemptStale && strings.Contains(a.Error, "did not answer") && strings.Contains(a.Error, "heartbeats since do not list the attempt") {
					return nil
				}
			}
			return fmt.Errorf("attempts %+v", tr.Attempts)
		}
		return fmt.Errorf("no trial")
	})
	close(stop)
	stop = make(chan struct{})
	q := newQuadratic()
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": q})
	st := cl.WaitDone(client, "grid", 60*time.Second)
	if st.Counts["succeeded"] != 1 {
		t.Fatalf("counts = %v, want the trial succeeded on the agent that works", st.Counts)
	}
}
