package coordinator_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
	"asymptote.dev/asymptote/sweep"
)

// TestBudgetStopsTheStudy runs trials one at a time, each ten times the
// FLOPs of the last; once the budget is spent the waiting trial is
// cancelled with the reason, and the status says where the budget went.
func TestBudgetStopsTheStudy(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(1), clustertest.InProcess{"synthetic": synthetic.New()})
	client := cl.Client()
	submit(t, client, `name: budget
method: synthetic
space:
  params: [1e6, 1e7, 1e8, 1e9]
fixed:
  tokens: 1e9
resources: {cpu: 1, memory: 16MiB}
budget: {flops: 1e17}
`)
	st := cl.WaitDone(client, "budget", 30*time.Second)
	// 6e15 + 6e16 < 1e17, so the third runs; after it, 6.66e17 is spent.
	if st.Counts["succeeded"] != 3 || st.Counts["cancelled"] != 1 {
		t.Fatalf("counts %v, want 3 succeeded and the last cancelled", st.Counts)
	}
	for _, tr := range results(t, client, "budget") {
		if tr.State == sweep.Cancelled && (tr.Params["params"] != 1e9 || !strings.Contains(tr.Error, "compute budget is spent")) {
			t.Errorf("cancelled trial %v: %q", tr.Params, tr.Error)
		}
	}
	b := st.Budget
	if b == nil || b.Kind != "flops" || math.Abs(b.Used-6.66e17) > 1e12 {
		t.Fatalf("budget = %+v, want 6.66e17 flops used", b)
	}
	if len(b.ByAxis) != 1 || b.ByAxis[0].Axis != "params" || b.ByAxis[0].Values[2].Used != 6e17 || b.ByAxis[0].Values[3].Used != 0 {
		t.Errorf("where the budget went: %+v", b.ByAxis)
	}
}
