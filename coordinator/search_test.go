package coordinator_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"asymptote.dev/asymptote/sweep"
)

// TestDegradationSearchBisectsEpochs runs the synthetic law with a fixed
// weight decay, whose loss falls with the first repeats and rises once the
// decay is too weak for the repetition: the search adds epoch counts until
// the first degrading count is bracketed within the resolution.
func TestDegradationSearchBisectsEpochs(t *testing.T) {
	cl, client := syntheticCluster(t)
	submit(t, client, `name: degrade
method: synthetic
space:
  epochs: [1, 8, 64, 512]
fixed:
  params: 1e9
  unique_tokens: 1e9
  weight_decay: 0.1
  wd_penalty: 0.05
derived:
  tokens: unique_tokens * epochs
resources: {cpu: 0.5, memory: 16MiB}
search:
  degradation: {axis: epochs, resolution: 1.5, max_values: 12}
`)
	st := cl.WaitDone(client, "degrade", 60*time.Second)
	if st.Counts["succeeded"] <= 4 {
		t.Fatalf("counts %v: the search added nothing", st.Counts)
	}
	type pt struct{ e, loss float64 }
	var pts []pt
	for _, tr := range results(t, client, "degrade") {
		if tr.State != sweep.Succeeded {
			t.Fatalf("trial %s %s", tr.ID, tr.State)
		}
		pts = append(pts, pt{tr.Params["epochs"].(float64), *tr.Result.Objective})
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].e < pts[j].e })
	// The first count above the running minimum by more than 2σ (σ is the
	// 0.004 floor: no replicates) must sit within 1.5× of the one before.
	runMin, found := pts[0].loss, false
	for i := 1; i < len(pts); i++ {
		if pts[i].loss > runMin+2*0.004 {
			if r := pts[i].e / pts[i-1].e; r > 1.5 {
				t.Errorf("degradation bracketed between %g and %g (ratio %.2f), want at most 1.5; points %v", pts[i-1].e, pts[i].e, r, pts)
			}
			found = true
			break
		}
		runMin = min(runMin, pts[i].loss)
	}
	if !found {
		t.Errorf("no degradation among %v", pts)
	}
	t.Logf("epoch counts run: %v", fmt.Sprint(pts))
}
