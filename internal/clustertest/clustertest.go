// Package clustertest boots real embedded NATS and etcd servers for tests,
// with coordinators and agents on top, and tears everything down with
// t.Cleanup. It is the only cluster harness: tests never mock NATS or etcd.
package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/devcluster"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// Cluster is a running test cluster.
type Cluster struct {
	t testing.TB
	// Node runs the servers, coordinators and agents.
	Node    *node.Node
	Servers *devcluster.Cluster
	Etcd    *clientv3.Client
	DataDir string
	// AgentQueue is the queue (agent.Config.Queue) of agents started
	// after it is set; 0 by default.
	AgentQueue float64
}

// New starts embedded NATS and etcd in a temporary directory.
func New(t testing.TB) *Cluster {
	t.Helper()
	dir := t.TempDir()
	n, err := node.Start(context.Background(), node.Config{
		Servers:       &devcluster.Config{DataDir: dir, NATSPort: -1},
		Logger:        Logger(t),
		ReconnectWait: 100 * time.Millisecond,
		KeepGoing:     true,
		Ended:         func(process string, err error) { t.Logf("%s ended: %v", process, err) },
	})
	if err != nil {
		t.Fatalf("start servers: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	cli, err := n.Etcd()
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	return &Cluster{t: t, Node: n, Servers: n.Servers, Etcd: cli, DataDir: dir}
}

// Logger returns a logger that writes through t.Log when
// ASYMPTOTE_TEST_LOG is set, and discards otherwise.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("ASYMPTOTE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// Conn returns a new NATS connection, closed at cleanup.
func (c *Cluster) Conn(name string) *nats.Conn {
	c.t.Helper()
	nc, err := c.Node.Conn(name)
	if err != nil {
		c.t.Fatalf("connect NATS: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// Client returns a client API connection.
func (c *Cluster) Client() *bus.Client {
	return bus.NewClient(c.Conn("client"), 20*time.Second)
}

// Process is a running coordinator or agent: Stop ends it and waits, Kill
// cuts it off from every server first, Partition only cuts it off.
type Process = node.Process

// StartCoordinator starts a coordinator named id with test-friendly
// timings; tweak may change its config.
func (c *Cluster) StartCoordinator(id string, tweak func(*node.CoordinatorConfig)) *Process {
	c.t.Helper()
	cfg := node.CoordinatorConfig{
		ID: id, LeaseTTL: 2 * time.Second, HeartbeatGrace: 3 * time.Second, Tick: 100 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := c.Node.StartCoordinator(node.Coordinator{Config: cfg})
	if err != nil {
		c.t.Fatalf("coordinator: %v", err)
	}
	c.t.Cleanup(p.Stop)
	return p
}

// StartAgent starts an agent offering res and running methods with
// runner.
func (c *Cluster) StartAgent(name string, res bus.Resources, runner node.MethodRunner) *Process {
	c.t.Helper()
	var names []string
	if m, ok := runner.(InProcess); ok {
		// The agent declares its methods, as a real one does from its
		// catalog, so the leader places trials only where they can run.
		names = slices.Sorted(maps.Keys(m))
	}
	p, err := c.Node.StartAgent(node.Agent{Config: node.AgentConfig{
		NodeID: name, Resources: res, Methods: runner, MethodNames: names,
		HeartbeatInterval: 200 * time.Millisecond, ShutdownGrace: 3 * time.Second,
		Queue: c.AgentQueue,
	}})
	if err != nil {
		c.t.Fatalf("agent: %v", err)
	}
	c.t.Cleanup(p.Stop)
	return p
}

// InProcess runs sdk methods inside the test process, for tests of
// orchestration that do not need plugin subprocesses.
type InProcess map[string]sdk.Method

// Run implements agent.MethodRunner.
func (m InProcess) Run(ctx context.Context, r node.MethodRun, report func(sdk.Metrics) error) (*sdk.Result, error) {
	meth, ok := m[r.Method]
	if !ok {
		return nil, fmt.Errorf("unknown method %q", r.Method)
	}
	if r.Checkpoint != nil {
		// Requests for a checkpoint now reach the method as a plugin's
		// would.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case q := <-r.Checkpoint:
					ok := r.Request.AskCheckpoint()
					if q.Found != nil {
						q.Found <- ok
					}
				}
			}
		}()
	}
	return meth.Run(ctx, r.Request, report)
}

// Info implements the agent's method description, as methodmgr does.
func (m InProcess) Info(ctx context.Context, method string) (*sdk.Info, error) {
	meth, ok := m[method]
	if !ok {
		return nil, fmt.Errorf("unknown method %q", method)
	}
	return meth.Info(ctx)
}

// WaitFor polls cond until it returns nil or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s: %v", timeout, err)
}

// WaitDone waits until study finishes and returns its status.
func (c *Cluster) WaitDone(client *bus.Client, study string, timeout time.Duration) api.StudyStatus {
	c.t.Helper()
	var st api.StudyStatus
	WaitFor(c.t, timeout, func() error {
		r, err := client.Status(context.Background(), study)
		if err != nil {
			return err
		}
		st = r.Studies[0]
		if !st.Done() {
			return fmt.Errorf("study %s not done: %v", study, st.Counts)
		}
		return nil
	})
	return st
}

// Follow runs follow, as a coordinator's API runs its Follow, from etcd's
// revision now on (so that nothing written after Follow returns is
// missed) until the test ends, and waits for it to return then.
func (c *Cluster) Follow(follow func(ctx context.Context, from int64)) {
	c.t.Helper()
	now, err := c.Etcd.Get(context.Background(), "revision")
	if err != nil {
		c.t.Fatalf("etcd revision: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); follow(ctx, now.Header.Revision+1) }()
	c.t.Cleanup(func() { cancel(); <-done })
}

// FinishedStudy writes a finished study of n succeeded synthetic trials
// straight to etcd, as a leader would have left it: the input of the
// benchmarks of what reads large studies (the HTTP API, the dashboard).
// Trial i has params 1e6 + (i mod 1000)·1e5, weight_decay (i mod 7)/10 and
// objective 2 + 1/(i+1).
func (c *Cluster) FinishedStudy(name string, n int) {
	c.t.Helper()
	ctx := context.Background()
	st := store.New(c.Etcd)
	now := time.Now()
	puts := []store.Put{{Key: store.StudyKey(name), Value: api.Study{Name: name, State: api.StudyDone, Method: "synthetic", Objective: "val_loss", Direction: "minimize",
		Trials: n, Spec: "name: " + name + "\nmethod: synthetic\n", SpecFile: name + ".yaml", Created: now, Updated: now}}}
	flush := func() {
		if _, err := st.Commit(ctx, puts); err != nil {
			c.t.Fatalf("write study %s: %v", name, err)
		}
		puts = puts[:0]
	}
	for i := range n {
		obj := 2 + 1/float64(i+1)
		size := 1e6 + float64(i%1000)*1e5
		t := api.Trial{ID: fmt.Sprintf("%020x", i), Study: name, Index: i, Method: "synthetic", State: sweep.Succeeded, Attempt: 1, Seed: int64(i % 10),
			Params:   map[string]any{"params": size, "weight_decay": float64(i%7) / 10, "tokens": 2e9, "steps": 34.0},
			Attempts: []api.Attempt{{N: 1, State: api.AttemptSucceeded, Node: "dev-1", Dispatched: now, Ended: &now}},
			Result: &api.Result{Attempt: 1, Node: "dev-1", Objective: &obj, Recorded: now,
				Metrics: map[string]float64{"val_loss": obj, "train_loss": obj * 0.9, "params": size, "tokens": 2e9, "flops": 6 * size * 2e9}},
			Created: now, Updated: now}
		puts = append(puts, store.Put{Key: store.TrialKey(name, t.ID), Value: t})
		if len(puts) >= 500 {
			flush()
		}
	}
	flush()
}
