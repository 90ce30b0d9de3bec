package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/devcluster"
)

func nopZap() *zap.Logger { return zap.NewNop() }

func init() {
	register(&Command{Name: "coordinator", Summary: "run a coordinator (leader or standby)", Run: runCoordinator})
	register(&Command{Name: "agent", Summary: "run an agent that executes trials on this host", Run: runAgent})
}

func runCoordinator(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "coordinator", "[flags]")
	natsURL := fs.String("nats-url", "", "NATS `URL` (default: start an embedded NATS server)")
	etcdEndpoints := fs.String("etcd-endpoints", "", "comma-separated etcd client `URLs` (default: start an embedded etcd server)")
	dataDir := fs.String("data-dir", "asymptote-data", "`directory` for the embedded servers' state")
	natsPort := fs.Int("nats-port", 4222, "port of the embedded NATS server")
	var jsSync natsSync
	jsSync.register(fs)
	var opts coordinatorOptions
	opts.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := opts.validate(); err != nil {
		return err
	}
	log := newLogger(env.Stderr, slog.LevelInfo)
	if (*natsURL == "") != (*etcdEndpoints == "") {
		return usagef("give both -nats-url and -etcd-endpoints for external clusters, or neither for embedded servers")
	}
	if *natsURL == "" {
		cl, err := devcluster.Start(ctx, devcluster.Config{DataDir: *dataDir, NATSPort: *natsPort, Logger: log, NATSSyncInterval: jsSync.interval})
		if err != nil {
			return err
		}
		defer cl.Close()
		*natsURL, *etcdEndpoints = cl.NATSURL, strings.Join(cl.EtcdEndpoints, ",")
		fmt.Fprintf(env.Stderr, "embedded NATS at %s, etcd at %s, state in %s\n", cl.NATSURL, *etcdEndpoints, *dataDir)
	}
	nc, err := connectNATS(*natsURL, "asymptote-coordinator", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	etcd, err := connectEtcd(strings.Split(*etcdEndpoints, ","))
	if err != nil {
		return err
	}
	defer etcd.Close()
	c, err := coordinator.New(opts.config(etcd, nc, log))
	if err != nil {
		return err
	}
	g, gctx := newGroup(ctx)
	g.Go("coordinator", func() error { return c.Run(gctx) })
	apiURL, err := opts.http.serve(gctx, g, env.Stderr, etcd, nc, log)
	if err != nil {
		g.cancel()
		return errors.Join(err, g.Wait())
	}
	if apiURL != "" {
		log.Info("serving the HTTP API", "url", apiURL)
	}
	return g.Wait()
}

func runAgent(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "agent", "[flags]")
	natsURL := fs.String("nats-url", defaultNATSURL, "NATS `URL`")
	var opts agentOptions
	fs.StringVar(&opts.nodeID, "node-id", defaultNodeID(), "stable, unique `name` of this agent (give each agent on one host its own)")
	fs.StringVar(&opts.dataDir, "data-dir", "", "`directory` for the agent's local state: its lock, and its method processes' registry and sockets (default "+defaultAgentDataDir("NODE_ID")+", one per -node-id)")
	opts.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := bus.ValidToken(opts.nodeID); err != nil {
		return usagef("-node-id %q: %v (it names NATS subjects); give a name such as gpu-01", opts.nodeID, err)
	}
	if opts.dataDir == "" {
		opts.dataDir = defaultAgentDataDir(opts.nodeID)
	}
	if err := opts.validate(); err != nil {
		return err
	}
	log := newLogger(env.Stderr, slog.LevelInfo)
	nc, err := connectNATS(*natsURL, "asymptote-agent-"+opts.nodeID, log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	a, stop, err := opts.newAgent(ctx, nc, log, hostShare{})
	if err != nil {
		return err
	}
	defer stop()
	return a.Run(ctx)
}

// group runs functions until the first returns, then cancels the rest and
// waits for them.
type group struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	cancel context.CancelFunc
}

func newGroup(ctx context.Context) (*group, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &group{cancel: cancel}, ctx
}

func (g *group) Go(name string, f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			g.mu.Lock()
			g.errs = append(g.errs, fmt.Errorf("%s: %w", name, err))
			g.mu.Unlock()
			g.cancel()
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	return errors.Join(g.errs...)
}

// natsSync is the -nats-sync flag of the embedded NATS server: "always"
// (fsync every JetStream write before acknowledging it) or a flush
// interval such as 2m (nats-server's own default).
type natsSync struct{ interval time.Duration }

func (s *natsSync) String() string {
	if s == nil || s.interval == 0 {
		return "always"
	}
	return s.interval.String()
}

// Get returns the flush interval, 0 for always (flag.Getter).
func (s *natsSync) Get() any { return s.interval }

func (s *natsSync) Set(v string) error {
	if v == "always" {
		s.interval = 0
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want always or a positive duration such as 2m, got %q", v)
	}
	s.interval = d
	return nil
}

func (s *natsSync) register(fs *flag.FlagSet) {
	fs.Var(s, "nats-sync", "when the embedded JetStream writes to disk: `always` (every write, before it is acknowledged: a power cut loses nothing acknowledged) or an interval such as 2m (faster; a power cut loses up to that much; docs/operations.md)")
}
