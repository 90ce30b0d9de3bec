package coordinator_test

import (
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/sweep"
)

// TestASHAStopsTrialsEarly tunes weight decay on the synthetic law, whose
// learning curves stream tokens and val_loss: trials that rank outside the
// best third at a rung are stopped there with the reason, and the best
// configuration runs to the end.
func TestASHAStopsTrialsEarly(t *testing.T) {
	cl, client := syntheticCluster(t)
	submit(t, client, `name: asha
method: synthetic
space:
  weight_decay: {range: [0.001, 10], count: 9, scale: log}
fixed:
  params: 1e8
  tokens: 1e9
  unique_tokens: 1e9
  steps: 10
  sleep: 1
resources: {cpu: 0.5, memory: 16MiB}
search:
  asha: {fidelity: tokens, rungs: [2e8, 5e8], eta: 3}
`)
	st := cl.WaitDone(client, "asha", 60*time.Second)
	t.Logf("counts %v", st.Counts)
	if st.Counts["cancelled"] < 3 {
		t.Fatalf("counts %v: want at least a third of the trials stopped early", st.Counts)
	}
	for _, tr := range results(t, client, "asha") {
		switch tr.State {
		case sweep.Cancelled:
			if !strings.Contains(tr.Error, "stopped early by ASHA") || len(tr.Rungs) == 0 {
				t.Errorf("trial wd=%v stopped without a reason or rungs: %q %+v", tr.Params["weight_decay"], tr.Error, tr.Rungs)
			}
			if len(tr.Late) != 0 {
				t.Errorf("trial wd=%v: the agent's confirmation of the stop kept as late: %+v", tr.Params["weight_decay"], tr.Late)
			}
		case sweep.Succeeded:
		default:
			t.Errorf("trial wd=%v ended %s", tr.Params["weight_decay"], tr.State)
		}
		// The optimum (0.1 at one epoch) must never be stopped.
		if tr.Params["weight_decay"] == 0.1 && tr.State != sweep.Succeeded {
			t.Errorf("the best weight decay was stopped: %q", tr.Error)
		}
	}
}
