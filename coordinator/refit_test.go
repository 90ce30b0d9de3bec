package coordinator_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/clustertest"
)

// TestLiveRefit checks that the leader refits a study's analysis plan as
// results arrive and keeps the fit, with intervals, in the study's status.
func TestLiveRefit(t *testing.T) {
	cl, client := syntheticCluster(t)
	submit(t, client, `name: live
method: synthetic
space:
  params: {range: [1e6, 1e10], count: 9, scale: log}
  weight_decay: [0.03, 0.1, 0.3]
fixed:
  tokens: 1e12
resources: {cpu: 0.5, memory: 16MiB}
analysis:
  fit: {law: power, x: params, best_over: [weight_decay], bootstrap: 50}
`)
	cl.WaitDone(client, "live", 30*time.Second)
	wantE := 1.69 + 410.7/math.Pow(1e12, 0.28)
	clustertest.WaitFor(t, 20*time.Second, func() error {
		r, err := client.Status(t.Context(), "live")
		if err != nil {
			return err
		}
		a := r.Studies[0].Analysis
		if len(a) != 1 || a[0].Points != 9 {
			return fmt.Errorf("analysis = %+v, want one fit of all 9 sizes", a)
		}
		e := a[0].Params[0]
		if e.Name != "E" || math.Abs(e.Value-wantE) > 0.01*wantE || e.Lo == nil {
			return fmt.Errorf("E = %+v, want %.4f with an interval", e, wantE)
		}
		// Weight decay's optimum at one epoch is 0.1, the middle value, and
		// every neighbour ran: every point is certified.
		if len(a[0].Uncert) != 0 {
			return fmt.Errorf("uncertified points: %+v", a[0].Uncert)
		}
		return nil
	})
}

// TestGridExtendsPastAnEdge runs a study whose best weight decay lies past
// the grid's largest value: with extend, the leader adds larger values
// until a best run is certified by a neighbour on both sides.
func TestGridExtendsPastAnEdge(t *testing.T) {
	_, client := syntheticCluster(t)
	// The synthetic law's best weight decay is wd_opt = 1 here; the grid
	// stops at 0.1.
	submit(t, client, `name: edge
method: synthetic
space:
  params: [1e7, 1e8, 1e9]
  weight_decay: [0.01, 0.1]
fixed:
  tokens: 1e11
  wd_opt: 1
resources: {cpu: 0.5, memory: 16MiB}
analysis:
  fit: {law: power, x: params, best_over: [weight_decay], bootstrap: 0, extend: 3}
`)
	var st []float64
	clustertest.WaitFor(t, 40*time.Second, func() error {
		r, err := client.Status(t.Context(), "edge")
		if err != nil {
			return err
		}
		s := r.Studies[0]
		if !s.Done() || len(s.Analysis) != 1 {
			return fmt.Errorf("state %s, counts %v", s.State, s.Counts)
		}
		if n := len(s.Analysis[0].Uncert); n != 0 {
			return fmt.Errorf("%d points still uncertified: %+v", n, s.Analysis[0].Uncert)
		}
		res := results(t, client, "edge")
		st = st[:0]
		for _, tr := range res {
			if tr.Params["params"] == 1e7 {
				st = append(st, tr.Params["weight_decay"].(float64))
			}
		}
		return nil
	})
	// 0.01, 0.1, then 1 and 10: the optimum at 1 is certified by 0.1 and 10.
	if len(st) != 4 {
		t.Errorf("weight decays run at N=1e7: %v; want the grid extended to 1 and 10", st)
	}
}
