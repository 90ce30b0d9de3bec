package coordinator_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
)

func studySpec(name string, priority, n int) string {
	xs := ""
	for i := range n {
		if i > 0 {
			xs += ", "
		}
		xs += fmt.Sprint(i)
	}
	return fmt.Sprintf("name: %s\nmethod: quadratic\nspace:\n  x: [%s]\nfixed:\n  sleep: 0.05\nresources: {cpu: 1, memory: 64MiB}\npriority: %d\n", name, xs, priority)
}

type dispatched struct {
	study string
	at    time.Time
}

// dispatchOrder returns every attempt of the studies in dispatch order.
func dispatchOrder(t *testing.T, c *bus.Client, studies ...string) []dispatched {
	t.Helper()
	var all []dispatched
	for _, s := range studies {
		for _, tr := range results(t, c, s) {
			for _, a := range tr.Attempts {
				all = append(all, dispatched{study: s, at: a.Dispatched})
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	return all
}

// TestPriorityAndFairShare checks the scheduler's order on a one-slot
// agent: a higher-priority study runs before a lower one's queued trials,
// and studies of equal priority take turns.
func TestPriorityAndFairShare(t *testing.T) {
	cl := clustertest.New(t)
	q := newQuadratic()
	q.block = make(chan struct{})
	cl.StartCoordinator("c1", nil)
	client := cl.Client()
	// Submit everything before any agent exists, so the order depends only
	// on the scheduler.
	submit(t, client, studySpec("low", 0, 4))
	submit(t, client, studySpec("high", 5, 3))
	submit(t, client, studySpec("peer", 0, 4))
	close(q.block)
	cl.StartAgent("a1", cpuNode(1), clustertest.InProcess{"quadratic": q})
	for _, s := range []string{"low", "high", "peer"} {
		cl.WaitDone(client, s, 30*time.Second)
	}
	order := dispatchOrder(t, client, "low", "high", "peer")
	var seq []string
	for _, d := range order {
		seq = append(seq, d.study)
	}
	for i := 0; i < 3; i++ {
		if seq[i] != "high" {
			t.Fatalf("dispatch order %v: want the priority-5 study's 3 trials first", seq)
		}
	}
	// The two priority-0 studies alternate.
	for i := 3; i+1 < len(seq); i += 2 {
		if seq[i] == seq[i+1] {
			t.Fatalf("dispatch order %v: equal-priority studies should take turns", seq)
		}
	}
}
