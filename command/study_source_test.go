package command

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
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

// TestFitStudyAsStatusShowsIt runs a study with an analysis plan on an
// embedded cluster and fits it with `fit --study NAME --spec NAME.yaml`:
// the parameters and intervals must be those the leader's refit keeps in
// the study's status (its bootstrap of 50 is under the live refit's cap,
// so even the intervals are the same).
func TestFitStudyAsStatusShowsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs embedded servers")
	}
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", bus.Resources{CPU: 2, Memory: 1 << 30}, clustertest.InProcess{"synthetic": synthetic.New()})
	client := cl.Client()
	spec := `name: tuned
method: synthetic
space:
  params: {range: [1e6, 1e10], count: 7, scale: log}
  weight_decay: [0.03, 0.1, 0.3]
fixed:
  tokens: 1e12
resources: {cpu: 0.5, memory: 16MiB}
analysis:
  fit: {law: power, x: params, best_over: [weight_decay], bootstrap: 50, seed: 4}
`
	file := filepath.Join(t.TempDir(), "tuned.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Submit(t.Context(), api.SubmitRequest{SpecFile: "tuned.yaml", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	cl.WaitDone(client, "tuned", 30*time.Second)
	// The last refit follows the last result.
	var sum api.FitSummary
	clustertest.WaitFor(t, 20*time.Second, func() error {
		r, err := client.Status(t.Context(), "tuned")
		if err != nil {
			return err
		}
		a := r.Studies[0].Analysis
		if len(a) != 1 || a[0].Trials != 21 || a[0].Error != "" {
			return fmt.Errorf("analysis = %+v, want the fit of all 21 trials", a)
		}
		sum = a[0]
		return nil
	})
	t.Setenv("ASYMPTOTE_NATS_URL", cl.Servers.NATSURL)
	// With the spec file, and without it (the leader sends the spec it
	// runs), the fit is the one status shows.
	for _, args := range [][]string{
		{"fit", "--study", "tuned", "--spec", file, "--format", "json"},
		{"fit", "--study", "tuned", "--format", "json"},
	} {
		out, err := runCommand(t, args[0], args[1:]...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		var rep fitJSON
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		if rep.N != sum.Points || rep.Plan == nil || rep.Plan.Bootstrap != 50 || rep.Plan.Seed != 4 {
			t.Errorf("%v: fitted %d points by plan %+v; status fits %d by the study's plan", args, rep.N, rep.Plan, sum.Points)
		}
		for _, p := range sum.Params {
			got := rep.Params[p.Name]
			if !near(got.Value, p.Value) {
				t.Errorf("%v: %s = %v, status shows %v", args, p.Name, got.Value, p.Value)
			}
			if len(got.CI) != 2 || p.Lo == nil || !near(got.CI[0], *p.Lo) || !near(got.CI[1], *p.Hi) {
				t.Errorf("%v: %s interval %v, status shows (%v, %v)", args, p.Name, got.CI, deref(p.Lo), deref(p.Hi))
			}
		}
	}
}
