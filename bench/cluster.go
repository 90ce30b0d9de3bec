package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/devcluster"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/internal/security"
	"asymptote.dev/asymptote/plugins/methods"
)

// cluster is one benchmark's embedded NATS and etcd with coordinators and
// agents in this process, started as `asymptote dev` starts them. Agents
// run methods as real plugin subprocesses through methodmgr.
type cluster struct {
	opts   Options
	dir    string
	node   *node.Node
	client *bus.Client
	// watcher is an etcd client on the server itself (no proxy), for
	// commitWatch.
	watcher *clientv3.Client
	// bundle holds the identities of a secure cluster; nil otherwise.
	bundle *security.Bundle
}

// startCluster starts the servers in a fresh directory under opts.TempDir.
func startCluster(ctx context.Context, opts Options) (*cluster, error) {
	dir, err := os.MkdirTemp(opts.TempDir, "asymptote-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cfg := node.Config{
		Servers:       &devcluster.Config{DataDir: dir, NATSPort: -1, Logger: opts.components, NATSSyncInterval: opts.natsSync},
		Logger:        opts.components,
		ReconnectWait: 100 * time.Millisecond,
		KeepGoing:     true,
		Ended: func(process string, err error) {
			opts.components.Warn("bench process ended", "process", process, "error", err)
		},
	}
	var bundle *security.Bundle
	if opts.secureAgents != nil {
		var err error
		// As `asymptote dev -secure`: the bench's own client is the
		// operator (every API verb), its etcd watcher the coordinator.
		if bundle, err = security.Init(security.Plan{Dir: filepath.Join(dir, "secure"), Agents: opts.secureAgents}); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: %w", err)
		}
		cfg.Servers.Security = bundle
		cfg.NATSSecurity, cfg.EtcdSecurity = bundle.NATS("operator"), bundle.Etcd("coordinator")
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: start servers: %w", err)
	}
	c := &cluster{opts: opts, dir: dir, node: n, bundle: bundle}
	nc, err := c.conn("bench-client")
	if err != nil {
		c.close()
		return nil, err
	}
	c.client = bus.NewClient(nc, 60*time.Second)
	if bundle != nil {
		// A secure bus lets the operator call the API only on its own
		// subjects, as `asymptote -team _all` does.
		if c.client, err = c.client.As(bus.AllTeams, "operator"); err != nil {
			c.close()
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	return c, nil
}

// close stops everything in reverse order of start and removes the
// servers' state.
func (c *cluster) close() {
	c.node.Close()
	os.RemoveAll(c.dir)
}

func (c *cluster) conn(name string) (*nats.Conn, error) {
	nc, err := c.node.Conn(name)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return nc, nil
}

func (c *cluster) etcd(endpoints []string) (*clientv3.Client, error) {
	cli, err := c.node.Etcd(endpoints...)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return cli, nil
}

// startLedCluster starts the servers and one coordinator, "bench", with
// default settings.
func startLedCluster(ctx context.Context, opts Options) (*cluster, error) {
	c, err := startCluster(ctx, opts)
	if err != nil {
		return nil, err
	}
	if _, err := c.startCoordinator("bench", nil); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// startCoordinator starts a coordinator with the production defaults
// (lease, tick, grace), unless tweak changes them. Its etcd traffic goes
// through a proxy that kill cuts.
func (c *cluster) startCoordinator(id string, tweak func(*node.CoordinatorConfig)) (*node.Process, error) {
	scheme, target, _ := strings.Cut(c.node.EtcdEndpoints[0], "://")
	px, err := newProxy(target)
	if err != nil {
		return nil, err
	}
	c.node.Defer(px.sever)
	cfg := node.CoordinatorConfig{ID: id}
	if tweak != nil {
		tweak(&cfg)
	}
	co := node.Coordinator{Config: cfg, EtcdEndpoints: []string{scheme + "://" + px.addr()}, Sever: px.sever}
	if c.bundle != nil {
		nc, ec := c.bundle.NATS("coordinator"), c.bundle.Etcd("coordinator")
		co.NATSSecurity, co.EtcdSecurity = &nc, &ec
	}
	p, err := c.node.StartCoordinator(co)
	if err != nil {
		return nil, fmt.Errorf("bench: coordinator: %w", err)
	}
	return p, nil
}

// startAgent starts an agent offering cpu cores that runs built-in methods
// as plugin subprocesses of opts.Executable.
func (c *cluster) startAgent(name string, cpu float64) (*node.Process, error) {
	dir := filepath.Join(c.dir, "m", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	a := node.Agent{
		Config: node.AgentConfig{
			NodeID: name, MethodNames: methods.Names(),
			Resources:         bus.Resources{CPU: cpu, Memory: 64 << 30},
			HeartbeatInterval: time.Second, ShutdownGrace: 2 * time.Second,
			Queue: max(c.opts.Queue, 0),
		},
		Manager: &node.ManagerConfig{Executable: c.opts.Executable, Builtins: methods.Names(), WorkDir: dir},
	}
	if c.bundle != nil {
		sec := c.bundle.NATS("agent-" + name)
		a.NATSSecurity = &sec
	}
	p, err := c.node.StartAgent(a)
	if err != nil {
		return nil, fmt.Errorf("bench: agent: %w", err)
	}
	return p, nil
}

// submit submits a synthetic study of n trials, each sleeping sleep and
// reserving cpu cores, and returns its name.
func (c *cluster) submit(ctx context.Context, name string, n int, sleep time.Duration, cpu float64) (*api.SubmitReply, error) {
	spec := syntheticSpec(name, n, sleep, cpu)
	r, err := c.client.Submit(ctx, api.SubmitRequest{SpecFile: name + ".yaml", Spec: spec})
	if err != nil {
		return nil, fmt.Errorf("bench: submit %s: %w", name, err)
	}
	if r.Total != n {
		return nil, fmt.Errorf("bench: submit %s: got %d trials, want %d", name, r.Total, n)
	}
	return r, nil
}

// syntheticSpec is a study of n synthetic trials that differ only in the
// model size.
func syntheticSpec(name string, n int, sleep time.Duration, cpu float64) string {
	return fmt.Sprintf(`name: %s
method: synthetic
objective: {metric: val_loss, direction: minimize}
space:
  params: {range: [1e6, 1e10], count: %d, scale: log}
fixed:
  unique_tokens: 1e9
  epochs: 1
  sleep: %g
derived:
  tokens: unique_tokens * epochs
resources: {cpu: %g, memory: 1MiB}
timeout: 10m
`, name, n, sleep.Seconds(), cpu)
}

// waitDone polls the study's status until it is done and returns it.
func (c *cluster) waitDone(ctx context.Context, study string, poll time.Duration) (*api.StudyStatus, error) {
	for {
		r, err := c.client.Status(ctx, study)
		if err == nil && len(r.Studies) == 1 && r.Studies[0].Done() {
			return &r.Studies[0], nil
		}
		select {
		case <-ctx.Done():
			if err == nil && len(r.Studies) == 1 {
				return nil, fmt.Errorf("bench: study %s not done (%v): %w", study, r.Studies[0].Counts, ctx.Err())
			}
			return nil, fmt.Errorf("bench: study %s not done: %w", study, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// waitNodes waits until the leader knows n live nodes.
func (c *cluster) waitNodes(ctx context.Context, n int) error {
	for {
		r, err := c.client.Status(ctx, "")
		if err == nil {
			alive := 0
			for _, nd := range r.Nodes {
				if nd.State == api.NodeAlive {
					alive++
				}
			}
			if alive >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: waiting for %d agents: %w", n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
