package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/agent"
	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/dashboard"
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
	// NATSSecurity and EtcdSecurity, when set, replace the node's for
	// this coordinator's connections (`dev -secure` runs each process
	// as its own identity).
	NATSSecurity *security.NATS
	EtcdSecurity *security.Etcd
}

// StartCoordinator dials the coordinator's connections and starts it.
func (n *Node) StartCoordinator(c Coordinator) (*Process, error) {
	etcd, err := n.etcd(c.EtcdSecurity, c.EtcdEndpoints...)
	if err != nil {
		closeListener(c.HTTP)
		return nil, err
	}
	nc, err := n.conn("asymptote-coordinator-"+c.Config.ID, c.NATSSecurity)
	if err != nil {
		closeListener(c.HTTP)
		return nil, err
	}
	cfg := c.Config
	cfg.Etcd, cfg.NATS = etcd, nc
	if cfg.Logger == nil {
		cfg.Logger = n.cfg.Logger.With("coordinator", cfg.ID)
	}
	co, err := coordinator.New(cfg)
	if err != nil {
		closeListener(c.HTTP)
		return nil, err
	}
	p := n.Go("coordinator", co.Run, func() {
		if c.Sever != nil {
			c.Sever()
		}
		etcd.Close()
		nc.Close()
	})
	if c.HTTP != nil {
		if err := n.serveHTTP(c.HTTP, etcd, nc); err != nil {
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
func (n *Node) serveHTTP(ln net.Listener, etcd *clientv3.Client, nc *nats.Conn) error {
	api, err := httpapi.New(httpapi.Config{Etcd: etcd, NATS: nc, Logger: n.cfg.Logger, UI: dashboard.Handler()})
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	n.Go("http api", func(ctx context.Context) error {
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
	return nil
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
	ag, err := agent.New(cfg)
	if err != nil {
		closeMgr()
		return nil, err
	}
	return n.Go("agent "+cfg.NodeID, func(ctx context.Context) error {
		defer release()
		defer closeMgr()
		return ag.Run(ctx)
	}, nc.Close), nil
}
