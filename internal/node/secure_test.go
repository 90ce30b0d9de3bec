package node_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/clustertest"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/internal/security"
	"asymptote.dev/asymptote/internal/security/securitytest"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// square is an in-process method: loss = x².
type square struct{}

func (square) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "square", Version: "1"}, nil
}

func (square) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	x, err := req.Float("x", 0)
	if err != nil {
		return nil, err
	}
	_ = report(sdk.Metrics{Step: 1, Values: map[string]float64{"val_loss": x * x}})
	return &sdk.Result{Metrics: map[string]float64{"val_loss": x * x}}, nil
}

const squareSpec = `
name: secure
method: square
objective: {metric: val_loss, direction: minimize}
space:
  x: [1, 2, 3]
resources: {cpu: 0.5, memory: 64MiB}
timeout: 30s
`

// client connects as identity name of bundle b.
func client(t *testing.T, url string, b *security.Bundle, name string) *bus.Client {
	t.Helper()
	opts, err := securitytest.NATSOf(b, name).Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return securitytest.ClientOf(t, bus.NewClient(nc, 20*time.Second), b, name)
}

// TestSecureCluster runs a study through a coordinator and an agent that
// each connect with their own identity to a real nats-server with TLS and
// the generated permissions, the coordinator to an etcd that requires its
// client certificate: the submitter's study runs to the end, the viewer
// reads its results and is refused a submission.
func TestSecureCluster(t *testing.T) {
	b, err := security.Init(security.Plan{Dir: filepath.Join(t.TempDir(), "secure"), Agents: []string{"gpu-01"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := securitytest.StartNATS(t, b)
	etcd := securitytest.StartEtcd(t, b)
	logger := clustertest.Logger(t)

	coordinator, err := node.Start(t.Context(), node.Config{
		NATSURL: srv.URL, EtcdEndpoints: []string{etcd}, Logger: logger, ReconnectWait: 100 * time.Millisecond,
		NATSSecurity: securitytest.NATSOf(b, "coordinator"), EtcdSecurity: securitytest.EtcdOf(b, "coordinator"),
		Coordinators: []node.Coordinator{{Config: node.CoordinatorConfig{ID: "c1", LeaseTTL: 2 * time.Second, HeartbeatGrace: 3 * time.Second, Tick: 100 * time.Millisecond}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { coordinator.Close() })
	agent, err := node.Start(t.Context(), node.Config{
		NATSURL: srv.URL, Logger: logger, ReconnectWait: 100 * time.Millisecond,
		NATSSecurity: securitytest.NATSOf(b, "agent-gpu-01"),
		Agents: []node.Agent{{Config: node.AgentConfig{
			NodeID: "gpu-01", Resources: bus.Resources{CPU: 2, Memory: 1 << 30},
			Methods: clustertest.InProcess{"square": square{}}, MethodNames: []string{"square"},
			HeartbeatInterval: 200 * time.Millisecond, ShutdownGrace: 3 * time.Second,
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })

	submitter := client(t, srv.URL, b, "submitter")
	clustertest.WaitFor(t, 20*time.Second, func() error {
		_, err := submitter.Submit(t.Context(), api.SubmitRequest{SpecFile: "secure.yaml", Spec: squareSpec})
		return err
	})
	viewer := client(t, srv.URL, b, "viewer")
	clustertest.WaitFor(t, 30*time.Second, func() error {
		r, err := viewer.Status(t.Context(), "secure")
		if err != nil {
			return err
		}
		if st := r.Studies[0]; !st.Done() {
			return fmt.Errorf("not done: %v", st.Counts)
		}
		return nil
	})
	r, err := viewer.Results(t.Context(), "secure")
	if err != nil {
		t.Fatalf("viewer results: %v", err)
	}
	if len(r.Trials) != 3 {
		t.Fatalf("%d trials, want 3", len(r.Trials))
	}
	for _, tr := range r.Trials {
		x, _ := tr.Params["x"].(float64)
		if tr.State != sweep.Succeeded || tr.Result == nil || tr.Result.Objective == nil || *tr.Result.Objective != x*x || tr.Result.Node != "gpu-01" {
			t.Errorf("trial %s: %s, result %+v, want succeeded on gpu-01 with %g", tr.ID, tr.State, tr.Result, x*x)
		}
	}
	_, err = viewer.Submit(t.Context(), api.SubmitRequest{SpecFile: "secure.yaml", Spec: squareSpec})
	if err == nil || !strings.Contains(err.Error(), "may not submit") {
		t.Errorf("viewer submit: %v, want the server's refusal", err)
	}
}
