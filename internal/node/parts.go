package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/agent"
	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/checkpoint"
	"asymptote.dev/asymptote/internal/dashboard"
	"asymptote.dev/asymptote/internal/health"
	"asymptote.dev/asymptote/internal/httpapi"
	"asymptote.dev/asymptote/internal/security"
)

// The configurations and method interfaces of coordinators and agents, so
// that what starts a node (tests, benchmarks) need not import them.
type (
	CoordinatorConfig = coordinator.Config
	AgentConfig       = agent.Config
	MethodRunner      = agent.MethodRunner
	MethodRun         = methodmgr.Run
	ManagerConfig     = methodmgr.Config
)

// Coordinator is a coordinator to start.
type Coordinator struct {
	// Config is its configuration; the node sets Etcd and NATS, and
	// Logger when it is nil (the node's, naming the coordinator).
	Config CoordinatorConfig
	// EtcdEndpoints, when set, are the etcd endpoints it dials instead of
	// the node's (the benchmarks put a proxy between them).
	EtcdEndpoints []string
	// Sever, when set, also runs when the process is killed or
	// partitioned, besides closing its connections.
	Sever func()
	// HTTP, when set, is where the HTTP API and dashboard are served
	// beside the coordinator, on its connections, until the node stops.
	HTTP net.Listener
	// HTTPTokens, when set, are the tokens the HTTP API requires.
	HTTPTokens *httpapi.Tokens
	// NATSSecurity and EtcdSecurity, when set, replace the node's for
	// this coordinator's connections (`dev -secure` runs each process
	// as its own identity).
	NATSSecurity *security.NATS
	EtcdSecurity *security.Etcd
	// Health, when set, is where the coordinator's liveness and readiness
	// (NATS connected, etcd answering) are served until the node stops.
	Health net.Listener
	// Checkpoints is where trials' checkpoints are kept, when
	// Config.Checkpoints is nil.
	Checkpoints Checkpoints
}

// Checkpoints says where a coordinator or agent keeps trials'
// checkpoints. The zero value is the NATS JetStream object store, reached
// over the process's own connection.
type Checkpoints struct {
	// Dir, when set, is a directory on a filesystem every agent and
	// coordinator mounts (NFS, Lustre) instead.
	Dir string
	// Off keeps none: methods are told so, and every attempt starts from
	// scratch.
	Off bool
	// Replicas is the object store's replication (a coordinator sets the
	// bucket's; an agent uses the bucket as it finds it).
	Replicas int
}

// store opens the store; for agents (open) an existing bucket keeps its
// settings.
func (c Checkpoints) store(nc *nats.Conn, log *slog.Logger, open bool) (checkpoint.Store, error) {
	switch {
	case c.Off:
		return nil, nil
	case c.Dir != "":
		return checkpoint.NewDir(c.Dir, log)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cfg := checkpoint.ObjectConfig{Replicas: c.Replicas, Logger: log, Open: open}
	return checkpoint.Lazy(func(ctx context.Context) (checkpoint.Store, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return checkpoint.NewObject(ctx, js, cfg)
	}), nil
}

// StartCoordinator dials the coordinator's connections and starts it.
func (n *Node) StartCoordinator(c Coordinator) (*Process, error) {
	closeListeners := func() {
		closeListener(c.HTTP)
		closeListener(c.Health)
	}
	etcd, err := n.etcd(c.EtcdSecurity, c.EtcdEndpoints...)
	if err != nil {
		closeListeners()
		return nil, err
	}
	nc, err := n.conn("asymptote-coordinator-"+c.Config.ID, c.NATSSecurity)
	if err != nil {
		closeListeners()
		return nil, err
	}
	cfg := c.Config
	cfg.Etcd, cfg.NATS = etcd, nc
	if cfg.Logger == nil {
		cfg.Logger = n.cfg.Logger.With("coordinator", cfg.ID)
	}
	if cfg.Checkpoints == nil {
		ck := c.Checkpoints
		if ck.Replicas == 0 {
			ck.Replicas = cfg.StreamReplicas
		}
		if cfg.Checkpoints, err = ck.store(nc, cfg.Logger, false); err != nil {
			closeListeners()
			nc.Close()
			etcd.Close()
			return nil, fmt.Errorf("checkpoint store: %w", err)
		}
	}
	co, err := coordinator.New(cfg)
	if err != nil {
		closeListeners()
		return nil, err
	}
	p := n.Go("coordinator", co.Run, func() {
		if c.Sever != nil {
			c.Sever()
		}
		etcd.Close()
		nc.Close()
	})
	if c.Health != nil {
		n.serve("health", c.Health, health.Handler(0, natsCheck(nc), etcdCheck(etcd)))
	}
	if c.HTTP != nil {
		if err := n.serveHTTP(c.HTTP, c.HTTPTokens, etcd, nc); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func closeListener(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}

// serveHTTP serves the HTTP API on ln until the node stops.
func (n *Node) serveHTTP(ln net.Listener, tokens *httpapi.Tokens, etcd *clientv3.Client, nc *nats.Conn) error {
	api, err := httpapi.New(httpapi.Config{Etcd: etcd, NATS: nc, Logger: n.cfg.Logger, UI: dashboard.Handler(), Tokens: tokens})
	if err != nil {
		ln.Close()
		return err
	}
	n.serve("http api", ln, api.Handler())
	// The tables of the studies still running and of the most recent
	// others are read before anyone opens them, and every study written
	// from now on is followed as it is written: a coordinator's first page
	// is then not the one that waits.
	n.Go("http api follow", func(ctx context.Context) error {
		api.Follow(ctx, 0)
		return nil
	}, nil)
	n.Go("http api warm", func(ctx context.Context) error {
		api.Warm(ctx, warmStudies)
		return nil
	}, nil)
	return nil
}

// warmStudies is how many of the most recently updated finished studies'
// tables the HTTP API loads when it starts, beside every running one's.
const warmStudies = 2

// serve serves h on ln as a process of the node until the node stops.
func (n *Node) serve(name string, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	n.Go(name, func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, nil)
}

// Agent is an agent to start.
type Agent struct {
	// Config is its configuration; the node sets NATS, Methods when it is
	// nil (from Manager), and Logger when it is nil (the node's, naming
	// the agent).
	Config AgentConfig
	// Manager, when Config.Methods is nil, configures the method manager
	// the agent runs methods with; its Logger defaults to the agent's.
	// The node closes it once the agent returned.
	Manager *ManagerConfig
	// Release, when set, runs once the agent returned and its manager
	// closed, and when it fails to start (the agent's data-directory
	// lock, say).
	Release func()
	// NATSSecurity, when set, replaces the node's for this agent's
	// connection.
	NATSSecurity *security.NATS
	// Health, when set, is where the agent's liveness and readiness (NATS
	// connected) are served until the node stops.
	Health net.Listener
	// Checkpoints is where the agent stores checkpoints, when
	// Config.Checkpoints is nil.
	Checkpoints Checkpoints
	// Allowlist, when set and Config.Allowlist is not, says what the agent
	// offers under the cluster's allowlist, given the list and the
	// external methods of it that the node's method manager verified
	// (methodmgr.Manager.Allow).
	Allowlist func(l bus.Allowlist, external []string) (names []string, env map[string][]string)
}

// StartAgent starts the agent with its own NATS connection and, when asked
// for, its method manager.
func (n *Node) StartAgent(a Agent) (p *Process, err error) {
	release := func() {
		if a.Release != nil {
			a.Release()
		}
	}
	defer func() {
		if err != nil {
			release()
			closeListener(a.Health)
		}
	}()
	cfg := a.Config
	if cfg.Logger == nil {
		cfg.Logger = n.cfg.Logger.With("node", cfg.NodeID)
	}
	var mgr *methodmgr.Manager
	if cfg.Methods == nil && a.Manager != nil {
		mc := *a.Manager
		if mc.Logger == nil {
			mc.Logger = cfg.Logger
		}
		if mgr, err = methodmgr.New(mc); err != nil {
			return nil, err
		}
		cfg.Methods = mgr
		if a.Allowlist != nil && cfg.Allowlist == nil {
			cfg.Allowlist = func(l bus.Allowlist) ([]string, map[string][]string) {
				return a.Allowlist(l, mgr.Allow(l.Methods))
			}
		}
	}
	closeMgr := func() {
		if mgr != nil {
			mgr.Close()
		}
	}
	nc, err := n.conn("asymptote-agent-"+cfg.NodeID, a.NATSSecurity)
	if err != nil {
		closeMgr()
		return nil, err
	}
	cfg.NATS = nc
	if cfg.Checkpoints == nil {
		if cfg.Checkpoints, err = a.Checkpoints.store(nc, cfg.Logger, true); err != nil {
			closeMgr()
			nc.Close()
			return nil, fmt.Errorf("checkpoint store: %w", err)
		}
	}
	ag, err := agent.New(cfg)
	if err != nil {
		closeMgr()
		return nil, err
	}
	p = n.Go("agent "+cfg.NodeID, func(ctx context.Context) error {
		defer release()
		defer closeMgr()
		return ag.Run(ctx)
	}, nc.Close)
	if a.Health != nil {
		n.serve("health", a.Health, health.Handler(0, natsCheck(nc)))
	}
	return p, nil
}

// natsCheck is ready while nc is connected (not reconnecting, draining or
// closed).
func natsCheck(nc *nats.Conn) health.Check {
	return health.Check{Name: "nats", Probe: func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			if err := nc.LastError(); err != nil {
				return fmt.Errorf("NATS connection is %s: %w", s, err)
			}
			return fmt.Errorf("NATS connection is %s", s)
		}
		return nil
	}}
}

// etcdCheck is ready while etcd answers a linearizable read, which needs
// a quorum of its members: a coordinator cut off from the quorum can
// neither lead nor serve current reads.
func etcdCheck(cli *clientv3.Client) health.Check {
	return health.Check{Name: "etcd", Probe: func(ctx context.Context) error {
		if _, err := cli.Get(ctx, "/asymptote/health", clientv3.WithCountOnly()); err != nil {
			return fmt.Errorf("etcd read: %w", err)
		}
		return nil
	}}
}
