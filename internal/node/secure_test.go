package node_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/coordinator"
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

// startSecure starts a nats-server with the bundle's configuration, an
// etcd that requires client certificates, a coordinator with quotas and
// agent gpu-01 offering method with res, each as its own identity.
func startSecure(t *testing.T, b *security.Bundle, quotas map[string]coordinator.Quota, res bus.Resources, name string, method sdk.Method) *securitytest.NATS {
	t.Helper()
	srv := securitytest.StartNATS(t, b)
	etcd := securitytest.StartEtcd(t, b)
	logger := clustertest.Logger(t)
	co, err := node.Start(t.Context(), node.Config{
		NATSURL: srv.URL, EtcdEndpoints: []string{etcd}, Logger: logger, ReconnectWait: 100 * time.Millisecond,
		NATSSecurity: securitytest.NATSOf(b, "coordinator"), EtcdSecurity: securitytest.EtcdOf(b, "coordinator"),
		Coordinators: []node.Coordinator{{Config: node.CoordinatorConfig{
			ID: "c1", LeaseTTL: 2 * time.Second, HeartbeatGrace: 3 * time.Second, Tick: 100 * time.Millisecond, Quotas: quotas,
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	agent, err := node.Start(t.Context(), node.Config{
		NATSURL: srv.URL, Logger: logger, ReconnectWait: 100 * time.Millisecond,
		NATSSecurity: securitytest.NATSOf(b, "agent-gpu-01"),
		Agents: []node.Agent{{Config: node.AgentConfig{
			NodeID: "gpu-01", Resources: res,
			Methods: clustertest.InProcess{name: method}, MethodNames: []string{name},
			HeartbeatInterval: 200 * time.Millisecond, ShutdownGrace: 3 * time.Second,
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	return srv
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
	srv := startSecure(t, b, nil, bus.Resources{CPU: 2, Memory: 1 << 30}, "square", square{})

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

// hold is an in-process method whose trials take a while, and which
// counts how many of each team's trials run at once (its studies are
// named after their team: a0, a1, b0).
type hold struct {
	mu       sync.Mutex
	now, top map[string]int
}

func (*hold) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "hold", Version: "1"}, nil
}

func (h *hold) Run(ctx context.Context, req *sdk.TrialRequest, report func(sdk.Metrics) error) (*sdk.Result, error) {
	team := req.Study[:1]
	h.mu.Lock()
	h.now[team]++
	h.top[team] = max(h.top[team], h.now[team])
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.now[team]--
		h.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(300 * time.Millisecond):
	}
	// One report, so the trial has a metric history.
	if err := report(sdk.Metrics{Step: 1, Values: map[string]float64{"val_loss": 1}}); err != nil {
		return nil, err
	}
	return &sdk.Result{Metrics: map[string]float64{"val_loss": 1}}, nil
}

// TestSecureTeams runs two teams on one cluster over a real nats-server
// with TLS and the generated permissions: team b's submitter cannot list,
// read or cancel team a's studies (the leader answers as for a missing
// study) and cannot publish on team a's subjects (the server refuses);
// the operator sees both teams and who submitted; a burst of team a's
// submissions never runs more than its quota while team b's use the room
// left, and status says why team a's trials wait.
func TestSecureTeams(t *testing.T) {
	b, err := security.Init(security.Plan{Dir: filepath.Join(t.TempDir(), "secure"), Agents: []string{"gpu-01"}, Teams: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	method := &hold{now: map[string]int{}, top: map[string]int{}}
	srv := startSecure(t, b, map[string]coordinator.Quota{"a": {Trials: 2}}, bus.Resources{CPU: 8, Memory: 4 << 30}, "hold", method)

	spec := func(name string, trials int) api.SubmitRequest {
		xs := make([]string, trials)
		for i := range xs {
			xs[i] = fmt.Sprint(i)
		}
		return api.SubmitRequest{SpecFile: name + ".yaml", Spec: fmt.Sprintf("name: %s\nmethod: hold\nobjective: {metric: val_loss, direction: minimize}\nspace:\n  x: [%s]\nresources: {cpu: 0.5, memory: 64MiB}\ntimeout: 30s\n", name, strings.Join(xs, ", "))}
	}
	subA, subB := client(t, srv.URL, b, "submitter-a"), client(t, srv.URL, b, "submitter-b")
	clustertest.WaitFor(t, 20*time.Second, func() error {
		_, err := subB.Submit(t.Context(), spec("b0", 8))
		return err
	})
	for _, name := range []string{"a0", "a1", "a2"} {
		if _, err := subA.Submit(t.Context(), spec(name, 4)); err != nil {
			t.Fatalf("submitter-a submits %s: %v", name, err)
		}
	}

	operator := client(t, srv.URL, b, "operator")
	clustertest.WaitFor(t, 10*time.Second, func() error {
		r, err := operator.Status(t.Context(), "a2")
		if err != nil {
			return err
		}
		if q := r.Studies[0].Quota; !strings.Contains(q, "team a is at its quota of 2 running trials") {
			return fmt.Errorf("status of a2 says %q about the quota", q)
		}
		return nil
	})

	r, err := subB.Status(t.Context(), "")
	if err != nil {
		t.Fatalf("submitter-b status: %v", err)
	}
	if len(r.Studies) != 1 || r.Studies[0].Name != "b0" || r.Studies[0].Team != "b" {
		t.Errorf("submitter-b lists %+v, want only b0 of team b", r.Studies)
	}
	missing := `no study named "a0" (run 'asymptote status' to list studies)`
	if _, err := subB.Status(t.Context(), "a0"); err == nil || err.Error() != missing {
		t.Errorf("submitter-b reads a0's status: %v, want %q", err, missing)
	}
	if _, err := subB.Results(t.Context(), "a0"); err == nil || err.Error() != missing {
		t.Errorf("submitter-b reads a0's results: %v, want %q", err, missing)
	}
	if _, err := subB.Cancel(t.Context(), api.CancelRequest{Study: "a0"}); err == nil || err.Error() != missing {
		t.Errorf("submitter-b cancels a0: %v, want %q", err, missing)
	}
	// On team a's subjects the server refuses team b's identity.
	asA := securitytest.ClientOf(t, subB, b, "submitter-a")
	for verb, call := range map[string]func() error{
		"status":  func() error { _, err := asA.Status(t.Context(), "a0"); return err },
		"cancel":  func() error { _, err := asA.Cancel(t.Context(), api.CancelRequest{Study: "a0"}); return err },
		"results": func() error { _, err := asA.Results(t.Context(), "a0"); return err },
	} {
		err := call()
		want := fmt.Sprintf(`Publish to "asymptote.api.%s.a.submitter-a"; this identity may not %s as submitter-a of team a`, verb, verb)
		if err == nil || !strings.Contains(err.Error(), "permissions violation") || !strings.Contains(err.Error(), want) {
			t.Errorf("submitter-b's %s on team a's subject: %v, want the server's refusal with %q", verb, err, want)
		}
	}

	clustertest.WaitFor(t, 60*time.Second, func() error {
		r, err := operator.Status(t.Context(), "")
		if err != nil {
			return err
		}
		if len(r.Studies) != 4 {
			return fmt.Errorf("the operator lists %d studies, want 4", len(r.Studies))
		}
		for _, st := range r.Studies {
			if !st.Done() {
				return fmt.Errorf("%s not done: %v", st.Name, st.Counts)
			}
		}
		return nil
	})
	r, err = operator.Status(t.Context(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	if st := r.Studies[0]; st.Team != "a" || len(st.Submissions) != 1 || st.Submissions[0].By != "submitter-a" || st.Counts["succeeded"] != 4 {
		t.Errorf("a1: team %q, submissions %+v, counts %v; want team a, submitted by submitter-a, 4 succeeded", st.Team, st.Submissions, st.Counts)
	}
	// The metric history: team a reads its own through the leader, team
	// b is answered as for a missing study, and the server refuses team
	// b's read of the history stream itself.
	reports := func(c *bus.Client, study string) (int, error) {
		n := 0
		err := c.History(t.Context(), study, "", func(cv *bus.Curve) error {
			n += cv.Len()
			return nil
		})
		return n, err
	}
	clustertest.WaitFor(t, 10*time.Second, func() error {
		n, err := reports(subA, "a1")
		if err == nil && n != 4 {
			err = fmt.Errorf("submitter-a reads %d reports of a1's history, want 4 (one a trial)", n)
		}
		return err
	})
	if _, err := reports(subB, "a1"); err == nil || err.Error() != `no study named "a1" (run 'asymptote status' to list studies)` {
		t.Errorf("submitter-b reads a1's history: %v, want the answer for a missing study", err)
	}
	opts, err := securitytest.NATSOf(b, "submitter-b").Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	err = bus.History(ctx, js, "a1", "", func(*bus.MetricsReport) error { return nil })
	cancel()
	if last := nc.LastError(); err == nil || last == nil || !strings.Contains(last.Error(), `Permissions Violation for Publish to "$JS.API.STREAM.INFO.ASYMPTOTE_HISTORY"`) {
		t.Errorf("submitter-b reads the history stream: %v (the server said %v), want the server's refusal", err, last)
	}

	method.mu.Lock()
	defer method.mu.Unlock()
	if method.top["a"] != 2 || method.top["b"] < 3 {
		t.Errorf("at most %d of team a's trials ran at once (quota 2) and %d of team b's (no quota, room for 16)", method.top["a"], method.top["b"])
	}
}
