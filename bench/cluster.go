package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	"asymptote.dev/asymptote/plugins/methods"
)

// cluster is one benchmark's embedded NATS and etcd with coordinators and
// agents in this process, the same code paths `asymptote dev` runs. Agents
// run methods as real plugin subprocesses through methodmgr.
type cluster struct {
	opts    Options
	dir     string
	servers *devcluster.Cluster
	client  *api.Client
	// watcher is an etcd client on the server itself (no proxy), for
	// commitWatch.
	watcher *clientv3.Client
	closers []func()
}

// process is a running coordinator or agent.
type process struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	// sever closes its connections without a goodbye, as SIGKILL would.
	sever func()
}

// stop ends the process and waits for it.
func (p *process) stop() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
	})
}

// kill cuts the process off from NATS and etcd first, so it can neither
// resign nor report, then stops it.
func (p *process) kill() {
	p.sever()
	p.stop()
}

// startCluster starts the servers in a fresh directory under opts.TempDir.
func startCluster(ctx context.Context, opts Options) (*cluster, error) {
	dir, err := os.MkdirTemp(opts.TempDir, "asymptote-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	srv, err := devcluster.Start(ctx, devcluster.Config{DataDir: dir, NATSPort: -1, Logger: opts.components, NATSSyncInterval: opts.natsSync})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: start servers: %w", err)
	}
	c := &cluster{opts: opts, dir: dir, servers: srv}
	c.closers = append(c.closers, func() { srv.Close(); os.RemoveAll(dir) })
	nc, err := c.conn("bench-client")
	if err != nil {
		c.close()
		return nil, err
	}
	c.client = api.NewClient(nc, 60*time.Second)
	return c, nil
}

// close stops everything in reverse order of start.
func (c *cluster) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}

func (c *cluster) conn(name string) (*nats.Conn, error) {
	nc, err := nats.Connect(c.servers.NATSURL, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("bench: connect NATS: %w", err)
	}
	c.closers = append(c.closers, nc.Close)
	return nc, nil
}

func (c *cluster) etcd(endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("bench: etcd client: %w", err)
	}
	c.closers = append(c.closers, func() { cli.Close() })
	return cli, nil
}

func (c *cluster) run(name string, f func(ctx context.Context) error, sever func()) *process {
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{cancel: cancel, done: make(chan struct{}), sever: sever}
	go func() {
		defer close(p.done)
		if err := f(ctx); err != nil && ctx.Err() == nil {
			c.opts.components.Warn("bench process ended", "process", name, "error", err)
		}
	}()
	c.closers = append(c.closers, p.stop)
	return p
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
func (c *cluster) startCoordinator(id string, tweak func(*coordinator.Config)) (*process, error) {
	target, _ := strings.CutPrefix(c.servers.EtcdEndpoints[0], "http://")
	px, err := newProxy(target)
	if err != nil {
		return nil, err
	}
	c.closers = append(c.closers, px.sever)
	etcd, err := c.etcd([]string{"http://" + px.addr()})
	if err != nil {
		return nil, err
	}
	nc, err := c.conn("coordinator-" + id)
	if err != nil {
		return nil, err
	}
	cfg := coordinator.Config{ID: id, Etcd: etcd, NATS: nc, Logger: c.opts.components.With("coordinator", id)}
	if tweak != nil {
		tweak(&cfg)
	}
	co, err := coordinator.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: coordinator: %w", err)
	}
	return c.run("coordinator "+id, co.Run, func() { px.sever(); nc.Close() }), nil
}

// startAgent starts an agent offering cpu cores that runs built-in methods
// as plugin subprocesses of opts.Executable.
func (c *cluster) startAgent(node string, cpu float64) (*process, error) {
	nc, err := c.conn("agent-" + node)
	if err != nil {
		return nil, err
	}
	mgr, err := c.manager(node)
	if err != nil {
		return nil, err
	}
	a, err := agent.New(agent.Config{
		NodeID: node, NATS: nc, Methods: mgr, MethodNames: methods.Names(),
		Resources:         bus.Resources{CPU: cpu, Memory: 64 << 30},
		HeartbeatInterval: time.Second, ShutdownGrace: 2 * time.Second,
		Queue:  max(c.opts.Queue, 0),
		Logger: c.opts.components.With("node", node),
	})
	if err != nil {
		return nil, fmt.Errorf("bench: agent: %w", err)
	}
	return c.run("agent "+node, a.Run, nc.Close), nil
}

// manager returns a plugin manager for node, closed with the cluster.
func (c *cluster) manager(node string) (*methodmgr.Manager, error) {
	dir := filepath.Join(c.dir, "m", node)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	mgr, err := methodmgr.New(methodmgr.Config{
		Executable: c.opts.Executable, Builtins: methods.Names(), WorkDir: dir,
		Logger: c.opts.components.With("node", node),
	})
	if err != nil {
		return nil, fmt.Errorf("bench: method manager: %w", err)
	}
	c.closers = append(c.closers, func() { mgr.Close() })
	return mgr, nil
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
