package coordinator_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/clustertest"
)

// TestAsymptoteSearch starts a scaling study with four small model sizes,
// whose bootstrap interval on the asymptote is wide, and lets the search
// add sizes until the interval is narrower than the target. The interval
// must then hold the synthetic law's true asymptote, and the compute must
// be a fraction of the grid that runs every size up to 1e10 outright.
func TestAsymptoteSearch(t *testing.T) {
	cl, client := syntheticCluster(t)
	submit(t, client, `name: asym
method: synthetic
space:
  params: [1e6, 3e6, 1e7, 3e7]
fixed:
  tokens: 1e12
  noise: 0.005
seeds: [0, 1]
resources: {cpu: 0.5, memory: 16MiB}
analysis:
  fit: {law: power, x: params, bootstrap: 100}
search:
  asymptote: {target_width: 0.1, max_values: 6}
`)
	st := cl.WaitDone(client, "asym", 90*time.Second)
	for _, d := range st.Decisions {
		t.Log(d.Reason)
	}
	if len(st.Extensions) == 0 {
		t.Fatalf("the search added no size; decisions: %+v", st.Decisions)
	}
	last := st.Decisions[len(st.Decisions)-1].Reason
	if !strings.Contains(last, "within the target") {
		t.Fatalf("the search stopped without reaching the target: %s", last)
	}
	used, grid := 0.0, 0.0
	sizes := map[float64]bool{}
	for _, tr := range results(t, client, "asym") {
		n := tr.Params["params"].(float64)
		used += n
		sizes[n] = true
	}
	for n := 1e6; n <= 1e10*1.01; n *= math.Sqrt(10) {
		grid += 2 * n // two seeds
	}
	t.Logf("sizes run: %d; compute %.3g of the full grid's %.3g (%.1f%%)", len(sizes), used, grid, 100*used/grid)
	if used >= grid {
		t.Errorf("the search used %.0f%% of the full grid's compute", 100*used/grid)
	}
	// The final fit's interval holds the law's asymptote at this data:
	// E + B/D^beta.
	wantE := 1.69 + 410.7/math.Pow(1e12, 0.28)
	clustertest.WaitFor(t, 20*time.Second, func() error {
		r, err := client.Status(t.Context(), "asym")
		if err != nil {
			return err
		}
		a := r.Studies[0].Analysis
		if len(a) != 1 || a[0].Points != 2*len(sizes) || a[0].Params[0].Lo == nil {
			return fmt.Errorf("final fit not there yet: %+v", a)
		}
		e := a[0].Params[0]
		if *e.Lo > wantE || *e.Hi < wantE {
			t.Errorf("E interval (%.4f, %.4f) misses the true asymptote %.4f", *e.Lo, *e.Hi, wantE)
		}
		return nil
	})
}
