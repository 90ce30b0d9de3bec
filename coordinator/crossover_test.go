package coordinator_test

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestCrossoverRefinement runs two recipes of the synthetic law whose
// curves cross near 5.8e6 parameters on a coarse grid, and lets the search
// measure near the estimated crossing until its interval is narrow: the
// interval must then hold the true crossing.
func TestCrossoverRefinement(t *testing.T) {
	cl, client := syntheticCluster(t)
	// Recipe alpha=0.3: 1.8 + 400 N^-0.3; recipe alpha=0.4: 1.6 + 2000 N^-0.4.
	submit(t, client, `name: cross
method: synthetic
space:
  params: [1e5, 1e7, 1e9, 1e11]
  alpha: [0.3, 0.4]
fixed:
  tokens: 1e15
  noise: 0.03
derived:
  E: 1.8 - (alpha - 0.3) * 2
  A: 400 + (alpha - 0.3) * 16000
seeds: [0, 1]
resources: {cpu: 0.5, memory: 16MiB}
analysis:
  fit: {law: power, x: params, group: alpha, bootstrap: 0}
search:
  crossover: {ratio: 1.6, max_values: 10}
`)
	st := cl.WaitDone(client, "cross", 90*time.Second)
	for _, d := range st.Decisions {
		t.Log(d.Reason)
	}
	if len(st.Extensions) == 0 {
		t.Fatal("the search measured nowhere new")
	}
	last := st.Decisions[len(st.Decisions)-1].Reason
	if !strings.Contains(last, "within the target ratio") {
		t.Fatalf("the search did not pin the crossing down: %s", last)
	}
	var lo, hi float64
	if _, err := fmtSscanInterval(last, &lo, &hi); err != nil {
		t.Fatalf("parse %q: %v", last, err)
	}
	// The true crossing of the two laws (the data term is the same for
	// both and cancels).
	f := func(n float64) float64 { return 1.8 + 400*math.Pow(n, -0.3) - 1.6 - 2000*math.Pow(n, -0.4) }
	a, b := 1e5, 1e9
	for range 100 {
		m := math.Sqrt(a * b)
		if f(a)*f(m) <= 0 {
			b = m
		} else {
			a = m
		}
	}
	if a < lo || a > hi {
		t.Errorf("true crossing %.4g outside the final interval (%.4g, %.4g)", a, lo, hi)
	}
}
