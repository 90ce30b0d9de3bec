package cli

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/methods/synthetic"
)

// TestFitFromAStudy fits the power law to a finished study's results read
// from the coordinator: the synthetic method's law at fixed data has the
// asymptote E + B/D^beta, which the fit must recover.
func TestFitFromAStudy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs embedded servers")
	}
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", bus.Resources{CPU: 2, Memory: 1 << 30}, clustertest.InProcess{"synthetic": synthetic.New()})
	client := cl.Client()
	spec := `name: sizes
method: synthetic
space:
  params: {range: [1e6, 1e10], count: 9, scale: log}
fixed:
  tokens: 1e12
resources: {cpu: 0.5, memory: 16MiB}
`
	if _, err := client.Submit(t.Context(), api.SubmitRequest{SpecFile: "sizes.yaml", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	cl.WaitDone(client, "sizes", 30*time.Second)
	t.Setenv("ASYMPTOTE_NATS_URL", cl.Servers.NATSURL)
	out, err := runCommand(t, "fit", "--study", "sizes", "--law", "power", "--x", "params", "--loss", "ls", "--starts", "200", "--format", "json")
	if err != nil {
		t.Fatalf("fit --study: %v", err)
	}
	var fit struct {
		Params map[string]struct {
			Value float64 `json:"value"`
		} `json:"params"`
	}
	if err := json.Unmarshal([]byte(out), &fit); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	wantE := 1.69 + 410.7/math.Pow(1e12, 0.28)
	if e := fit.Params["E"].Value; math.Abs(e-wantE) > 0.01*wantE {
		t.Errorf("E = %v, want %v (E + B/D^beta of the synthetic law)\n%s", e, wantE, out)
	}
	if a := fit.Params["alpha"].Value; math.Abs(a-0.34) > 0.01 {
		t.Errorf("alpha = %v, want 0.34\n%s", a, out)
	}
}
