package httpapi_test

import (
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
)

// pausedSpec is promotion ASHA that continues promoted trials from the
// rung below's checkpoint: a trial that succeeded at a rung is paused
// until the search promotes it or is over.
const pausedSpec = `name: asha
method: synthetic
space:
  weight_decay: {range: [0.01, 1], count: 9, scale: log}
fixed: {params: 1e7, tokens: 2e7, noise: 0.01, checkpoint_every: 10, step_tokens: 1e6}
derived:
  unique_tokens: tokens
resources: {cpu: 2, memory: 16MiB}
search:
  asha: {fidelity: tokens, rungs: [2e7, 6e7, 1.8e8], eta: 3, promote: true, continue: true}
`

// TestPaused checks that the study endpoint's paused=1 and the studies
// list say how many trials wait for a promotion while a continuing ASHA
// study runs, as the leader counts them, and that none does once it is
// over.
func TestPaused(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded servers")
	}
	cl := clustertest.New(t)
	// One trial at a time, none queued ahead on the agent: rungs fill
	// one result after another, so trials wait at each.
	cl.StartCoordinator("c1", func(c *node.CoordinatorConfig) { c.QueueBelow = -1 })
	cl.StartAgent("a1", bus.Resources{CPU: 2, Memory: 8 << 30}, clustertest.InProcess{"synthetic": synthetic.New()})
	e := &env{t: t, cl: cl, url: serveAPI(t, cl)}
	client := cl.Client()
	if _, err := client.Submit(t.Context(), api.SubmitRequest{SpecFile: "asha.yaml", Spec: pausedSpec}); err != nil {
		t.Fatal(err)
	}
	var sawStudy, sawList bool
	for deadline := time.Now().Add(2 * time.Minute); !(sawStudy && sawList) && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var one httpapi.StudySummary
		e.get("/api/v1/studies/asha?counts=0&paused=1", 200, &one)
		if one.State == api.StudyDone {
			break
		}
		sawStudy = sawStudy || one.Paused > 0
		var list struct{ Studies []httpapi.StudySummary }
		e.get("/api/v1/studies", 200, &list)
		sawList = sawList || (len(list.Studies) == 1 && list.Studies[0].Paused > 0)
	}
	if !sawStudy || !sawList {
		t.Fatalf("while the study ran: paused seen by the study endpoint %v, by the studies list %v; want both", sawStudy, sawList)
	}
	cl.WaitDone(client, "asha", 2*time.Minute)
	var one httpapi.StudySummary
	e.get("/api/v1/studies/asha?counts=0&paused=1", 200, &one)
	if one.Paused != 0 {
		t.Errorf("%d trials paused once the study is over, want 0", one.Paused)
	}
	var off httpapi.StudySummary
	e.get("/api/v1/studies/asha?paused=0", 200, &off)
	e.wantField("/api/v1/studies/asha?paused=yes", 400, "paused")
}
