package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/plugins/sdk"
)

// waitAgents waits until n agents are alive, so the leader knows what they
// offer.
func waitAgents(t *testing.T, client *bus.Client, n int) {
	t.Helper()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		r, err := client.Status(t.Context(), "")
		if err != nil {
			return err
		}
		if len(r.Nodes) < n {
			return fmt.Errorf("%d agents, want %d", len(r.Nodes), n)
		}
		return nil
	})
}

// TestSubmitRefusesAMethodNoAgentOffers: such a study was accepted and
// burnt its retries on agents that could not run it.
func TestSubmitRefusesAMethodNoAgentOffers(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client := cl.Client()
	waitAgents(t, client, 1)
	spec := replace(gridSpec, "method: quadratic", "method: charlm")
	_, err := client.Submit(t.Context(), api.SubmitRequest{SpecFile: "g.yaml", Spec: spec})
	if err == nil || !strings.Contains(err.Error(), `no live agent offers method "charlm" (they offer quadratic)`) || !strings.Contains(err.Error(), "-allow-unoffered-methods") {
		t.Fatalf("submit = %v, want a refusal naming the methods on offer and the flag", err)
	}

	// With the operator's flag, the study waits for such an agent, and
	// status says why.
	cl2 := clustertest.New(t)
	cl2.StartCoordinator("c1", func(c *coordinator.Config) { c.AllowUnofferedMethods = true })
	cl2.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client2 := cl2.Client()
	waitAgents(t, client2, 1)
	submit(t, client2, spec)
	r, err := client2.Status(t.Context(), "grid")
	if err != nil {
		t.Fatal(err)
	}
	if w := r.Studies[0].Waiting; !strings.Contains(w, "12 trials wait") || !strings.Contains(w, "charlm") {
		t.Errorf("waiting = %q, want the 12 trials and the missing method", w)
	}
}

// TestTrialsNoAgentCanFitAreExplained: a trial that needs more than any
// agent offers waited forever with "0 running"; submit warns, and status
// says what the trials need and what the largest agent offers.
func TestTrialsNoAgentCanFitAreExplained(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client := cl.Client()
	waitAgents(t, client, 1)
	r := submit(t, client, replace(gridSpec, "cpu: 0.5", "cpu: 64"))
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "needs cpu 64") || !strings.Contains(r.Warnings[0], "largest offers cpu 2") {
		t.Errorf("warnings = %q, want what a trial needs and what the largest agent offers", r.Warnings)
	}
	st, err := client.Status(t.Context(), "grid")
	if err != nil {
		t.Fatal(err)
	}
	if w := st.Studies[0].Waiting; !strings.Contains(w, "12 trials wait") || !strings.Contains(w, "cpu 64") {
		t.Errorf("waiting = %q", w)
	}
	// A study that fits gets no warning.
	if r := submit(t, client, replace(gridSpec, "name: grid", "name: small")); len(r.Warnings) != 0 {
		t.Errorf("warnings for a study that fits: %q", r.Warnings)
	}
}

// TestCancelOfAFinishedStudyChangesNothing: it marked the study cancelled,
// which then refused every extension, though no trial was stopped.
func TestCancelOfAFinishedStudyChangesNothing(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	cl.StartAgent("a1", cpuNode(2), clustertest.InProcess{"quadratic": newQuadratic()})
	client := cl.Client()
	submit(t, client, gridSpec)
	cl.WaitDone(client, "grid", 30*time.Second)
	r, err := client.Cancel(t.Context(), api.CancelRequest{Study: "grid"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Cancelled != 0 || !strings.Contains(r.Note, "has finished") {
		t.Errorf("cancel = %+v, want nothing cancelled and a note that says why", r)
	}
	ext := replace(gridSpec, "x: [0, 1, 2, 3, 4, 5]", "x: [0, 1, 2, 3, 4, 5, 6]")
	if r := submit(t, client, ext); r.Added != 2 {
		t.Errorf("extension after cancel: %+v, want 2 added", r)
	}
	cl.WaitDone(client, "grid", 30*time.Second)
}

// versioned is quadratic reporting another version of itself.
type versioned struct {
	*quadratic
	v string
}

func (m versioned) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "quadratic", Version: m.v}, nil
}

// TestResultsNameTheMethodVersion: a result records the version of the
// method that produced it, and status says when a study's results come
// from more than one version.
func TestResultsNameTheMethodVersion(t *testing.T) {
	cl := clustertest.New(t)
	cl.StartCoordinator("c1", nil)
	q := newQuadratic()
	cl.StartAgent("a1", cpuNode(1), clustertest.InProcess{"quadratic": versioned{q, "1.0.0"}})
	cl.StartAgent("a2", cpuNode(1), clustertest.InProcess{"quadratic": versioned{q, "1.1.0"}})
	client := cl.Client()
	waitAgents(t, client, 2)
	submit(t, client, gridSpec)
	st := cl.WaitDone(client, "grid", 30*time.Second)
	seen := map[string]int{}
	for id, tr := range results(t, client, "grid") {
		if tr.Result == nil {
			t.Fatalf("trial %s has no result", id)
		}
		want := map[string]string{"a1": "1.0.0", "a2": "1.1.0"}[tr.Result.Node]
		if tr.Result.MethodVersion != want {
			t.Errorf("trial %s ran on %s: version %q, want %q", id, tr.Result.Node, tr.Result.MethodVersion, want)
		}
		seen[tr.Result.MethodVersion]++
	}
	if len(seen) == 2 && strings.Join(st.MethodVersions, ",") != "1.0.0,1.1.0" {
		t.Errorf("status method versions = %v, want both", st.MethodVersions)
	}
}
