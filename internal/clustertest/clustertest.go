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
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"asymptote.dev/asymptote/agent"
	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/devcluster"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/plugins/sdk"
	"asymptote.dev/asymptote/sweep"
)

// Cluster is a running test cluster.
type Cluster struct {
	t       testing.TB
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
	srv, err := devcluster.Start(t.Context(), devcluster.Config{DataDir: dir, NATSPort: -1, Logger: Logger(t)})
	if err != nil {
		t.Fatalf("start servers: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.EtcdEndpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return &Cluster{t: t, Servers: srv, Etcd: cli, DataDir: dir}
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
	nc, err := nats.Connect(c.Servers.NATSURL, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatalf("connect NATS: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// Client returns a client API connection.
func (c *Cluster) Client() *api.Client {
	return api.NewClient(c.Conn("client"), 20*time.Second)
}

// Process is a running coordinator or agent; Stop ends it and waits.
type Process struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	// sever cuts the process off from NATS and etcd without letting it say
	// goodbye, as a crash or a partition would.
	sever func()
}

// Kill cuts the process off from every server first, so it cannot resign,
// report or heartbeat, then stops it: to the rest of the cluster it looks
// like a process killed with SIGKILL.
func (p *Process) Kill() {
	p.sever()
	p.Stop()
}

// Partition cuts the process off from every server but leaves it running,
// as a network partition would.
func (p *Process) Partition() { p.sever() }

// Stop stops the process and waits for it to return.
func (p *Process) Stop() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
	})
}

func (c *Cluster) start(run func(ctx context.Context) error, sever func()) *Process {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Process{cancel: cancel, done: make(chan struct{}), sever: sever}
	go func() {
		defer close(p.done)
		if err := run(ctx); err != nil {
			c.t.Logf("process ended: %v", err)
		}
	}()
	c.t.Cleanup(p.Stop)
	return p
}

// StartCoordinator starts a coordinator named id with test-friendly
// timings; tweak may change its config.
func (c *Cluster) StartCoordinator(id string, tweak func(*coordinator.Config)) *Process {
	c.t.Helper()
	etcd, err := clientv3.New(clientv3.Config{Endpoints: c.Servers.EtcdEndpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatalf("etcd client: %v", err)
	}
	c.t.Cleanup(func() { etcd.Close() })
	nc := c.Conn("coordinator-" + id)
	cfg := coordinator.Config{
		ID: id, Etcd: etcd, NATS: nc, Logger: Logger(c.t).With("coordinator", id),
		LeaseTTL: 2 * time.Second, HeartbeatGrace: 3 * time.Second, Tick: 100 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	co, err := coordinator.New(cfg)
	if err != nil {
		c.t.Fatalf("coordinator: %v", err)
	}
	return c.start(co.Run, func() { etcd.Close(); nc.Close() })
}

// StartAgent starts an agent offering res and running methods with
// runner.
func (c *Cluster) StartAgent(node string, res bus.Resources, runner agent.MethodRunner) *Process {
	c.t.Helper()
	nc := c.Conn("agent-" + node)
	var names []string
	if m, ok := runner.(InProcess); ok {
		// The agent declares its methods, as a real one does from its
		// catalog, so the leader places trials only where they can run.
		names = slices.Sorted(maps.Keys(m))
	}
	a, err := agent.New(agent.Config{
		NodeID: node, NATS: nc, Resources: res, Methods: runner, MethodNames: names,
		HeartbeatInterval: 200 * time.Millisecond, ShutdownGrace: 3 * time.Second,
		Queue:  c.AgentQueue,
		Logger: Logger(c.t).With("node", node),
	})
	if err != nil {
		c.t.Fatalf("agent: %v", err)
	}
	return c.start(a.Run, nc.Close)
}

// InProcess runs sdk methods inside the test process, for tests of
// orchestration that do not need plugin subprocesses.
type InProcess map[string]sdk.Method

// Run implements agent.MethodRunner.
func (m InProcess) Run(ctx context.Context, r methodmgr.Run, report func(sdk.Metrics) error) (*sdk.Result, error) {
	meth, ok := m[r.Method]
	if !ok {
		return nil, fmt.Errorf("unknown method %q", r.Method)
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
func (c *Cluster) WaitDone(client *api.Client, study string, timeout time.Duration) api.StudyStatus {
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
