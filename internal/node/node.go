// Package node starts what one asymptote process runs: embedded NATS and
// etcd servers (unless it is given external ones), coordinators, agents and
// the HTTP API beside a coordinator. `asymptote dev`, `asymptote
// coordinator`, `asymptote agent`, the benchmarks and the test cluster all
// start their parts here, so every mode runs the same code paths.
//
// Each coordinator and agent runs as a Process with its own connections,
// which can be stopped, killed (cut off first, as SIGKILL would) or
// partitioned on its own. Close stops every process, then closes the
// connections and servers in reverse order of start.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"asymptote.dev/asymptote/internal/devcluster"
	"asymptote.dev/asymptote/internal/security"
)

// Config describes a node.
type Config struct {
	// Servers, when set, starts embedded NATS and etcd servers with this
	// configuration (its Logger defaults to Logger); NATSURL and
	// EtcdEndpoints are then theirs.
	Servers *devcluster.Config
	// NATSURL and EtcdEndpoints are external servers' client URLs, used
	// when Servers is nil. Etcd is dialled only for coordinators.
	NATSURL       string
	EtcdEndpoints []string
	// NATSSecurity and EtcdSecurity are the TLS settings and credentials
	// of every connection the node dials (zero: plaintext, anonymous).
	NATSSecurity security.NATS
	EtcdSecurity security.Etcd
	// Logger is the processes' logger unless their own config names one
	// (default: discard).
	Logger *slog.Logger
	// ReconnectWait is how long a NATS connection waits between attempts
	// to reconnect (default 250ms). Connections never give up.
	ReconnectWait time.Duration
	// KeepGoing leaves the other processes running when one fails. By
	// default the first failure stops the whole node, as a process does
	// when any of its parts dies.
	KeepGoing bool
	// Ended, when set, hears of every process that returned an error
	// while it was not being stopped.
	Ended func(process string, err error)
	// Coordinators and Agents are started by Start, in this order.
	Coordinators []Coordinator
	Agents       []Agent
}

// Node is a running node.
type Node struct {
	cfg Config
	// Servers are the embedded servers; nil with external ones.
	Servers *devcluster.Cluster
	// NATSURL and EtcdEndpoints are where the node's servers are.
	NATSURL       string
	EtcdEndpoints []string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	errs    []error
	closers []func()
}

// Start starts the embedded servers when cfg asks for them, then the
// configured coordinators and agents. The processes run until ctx ends,
// Close is called or, unless cfg.KeepGoing, one of them fails.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReconnectWait == 0 {
		cfg.ReconnectWait = 250 * time.Millisecond
	}
	n := &Node{cfg: cfg, NATSURL: cfg.NATSURL, EtcdEndpoints: cfg.EtcdEndpoints}
	if cfg.Servers != nil {
		sc := *cfg.Servers
		if sc.Logger == nil {
			sc.Logger = cfg.Logger
		}
		srv, err := devcluster.Start(ctx, sc)
		if err != nil {
			return nil, err
		}
		n.Servers, n.NATSURL, n.EtcdEndpoints = srv, srv.NATSURL, srv.EtcdEndpoints
		n.Defer(func() { srv.Close() })
	}
	n.ctx, n.cancel = context.WithCancel(ctx)
	for _, c := range cfg.Coordinators {
		if _, err := n.StartCoordinator(c); err != nil {
			n.Close()
			return nil, err
		}
	}
	for _, a := range cfg.Agents {
		if _, err := n.StartAgent(a); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// Context ends when the node stops: its parent context ended, Close was
// called or (unless KeepGoing) a process failed.
func (n *Node) Context() context.Context { return n.ctx }

// Defer runs f when the node closes, after every process stopped and
// before what was deferred earlier.
func (n *Node) Defer(f func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closers = append(n.closers, f)
}

// Conn dials the node's NATS server; the node closes the connection.
func (n *Node) Conn(name string) (*nats.Conn, error) { return n.conn(name, nil) }

// conn dials the node's NATS server with sec, or the node's settings when
// sec is nil.
func (n *Node) conn(name string, sec *security.NATS) (*nats.Conn, error) {
	if sec == nil {
		sec = &n.cfg.NATSSecurity
	}
	nc, err := DialNATS(n.NATSURL, name, n.cfg.Logger, n.cfg.ReconnectWait, *sec)
	if err != nil {
		return nil, err
	}
	n.Defer(nc.Close)
	return nc, nil
}

// Etcd returns a client of endpoints (default: the node's etcd); the node
// closes it.
func (n *Node) Etcd(endpoints ...string) (*clientv3.Client, error) {
	return n.etcd(nil, endpoints...)
}

// etcd returns a client of endpoints with sec, or the node's settings
// when sec is nil.
func (n *Node) etcd(sec *security.Etcd, endpoints ...string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		endpoints = n.EtcdEndpoints
	}
	if sec == nil {
		sec = &n.cfg.EtcdSecurity
	}
	cli, err := DialEtcd(endpoints, *sec)
	if err != nil {
		return nil, err
	}
	n.Defer(func() { cli.Close() })
	return cli, nil
}

// Go runs f as a process of the node named name until it returns, the
// process is stopped or the node stops. sever, when set, cuts the process
// off from the servers (Kill, Partition).
func (n *Node) Go(name string, f func(ctx context.Context) error, sever func()) *Process {
	ctx, cancel := context.WithCancel(n.ctx)
	p := &Process{name: name, cancel: cancel, done: make(chan struct{}), sever: sever}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(p.done)
		p.err = f(ctx)
		n.ended(p.name, p.err, ctx.Err() != nil)
	}()
	n.Defer(p.Stop)
	return p
}

// ended records a process's error and, unless KeepGoing, stops the node.
func (n *Node) ended(name string, err error, stopping bool) {
	if err == nil {
		return
	}
	if !stopping && n.cfg.Ended != nil {
		n.cfg.Ended(name, err)
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	n.mu.Lock()
	n.errs = append(n.errs, fmt.Errorf("%s: %w", name, err))
	n.mu.Unlock()
	if !n.cfg.KeepGoing {
		n.cancel()
	}
}

// Wait waits for every process started so far to return and joins their
// failures.
func (n *Node) Wait() error {
	n.wg.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	return errors.Join(n.errs...)
}

// Close stops every process and waits for them, then closes the
// connections and servers, last started first. It returns what Wait
// would.
func (n *Node) Close() error {
	n.cancel()
	err := n.Wait()
	n.mu.Lock()
	closers := n.closers
	n.closers = nil
	n.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	return err
}

// Process is a running coordinator, agent or server of a node.
type Process struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error
	// sever cuts the process off from NATS and etcd without letting it
	// say goodbye, as a crash or a partition would.
	sever func()
}

// Stop stops the process and waits for it to return.
func (p *Process) Stop() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
	})
}

// Kill cuts the process off from every server first, so it cannot resign,
// report or heartbeat, then stops it: to the rest of the cluster it looks
// like a process killed with SIGKILL.
func (p *Process) Kill() {
	p.Partition()
	p.Stop()
}

// Partition cuts the process off from every server but leaves it running,
// as a network partition would.
func (p *Process) Partition() {
	if p.sever != nil {
		p.sever()
	}
}

// Done is closed once the process returned.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is what the process returned; call it once Done is closed.
func (p *Process) Err() error { return p.err }

// DialNATS dials NATS with sec's TLS and credentials and with reconnects
// that never give up, every wait apart: agents and coordinators outlive
// NATS restarts. A server that refuses the credentials is retried too
// (the operator may be reloading its configuration), and each refusal is
// logged.
func DialNATS(url, name string, log *slog.Logger, wait time.Duration, sec security.NATS) (*nats.Conn, error) {
	secure, err := sec.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, append(secure,
		nats.Name(name),
		nats.IgnoreAuthErrorAbort(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS refused", "error", err)
		}),
		// A refused or failed (re)connect: without this, a process given
		// credentials the server does not list would retry in silence.
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("cannot connect to NATS; retrying", "url", url, "error", err)
		}),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(wait),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("reconnected to NATS", "url", c.ConnectedUrl()) }),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// DialEtcd returns an etcd client for endpoints with sec's TLS and
// credentials.
func DialEtcd(endpoints []string, sec security.Etcd) (*clientv3.Client, error) {
	tc, user, password, err := sec.Client()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		TLS:         tc,
		Username:    user,
		Password:    password,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %v: %w", endpoints, err)
	}
	return cli, nil
}
