package command

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/devcluster"
	"asymptote.dev/asymptote/internal/node"
)

// coordinatorCommand is `asymptote coordinator`.
type coordinatorCommand struct {
	invocation
	natsURL, etcdEndpoints, dataDir string
	health                          string
	natsPort                        int
	jsSync                          natsSync
	natsSec                         natsSecurityFlags
	etcdSec                         etcdSecurityFlags
	opts                            coordinatorOptions
}

// flags declares coordinator's flags.
func (cmd *coordinatorCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "coordinator", "[flags]")
	fs.StringVar(&cmd.natsURL, "nats-url", "", "NATS `URL` (default: start an embedded NATS server)")
	fs.StringVar(&cmd.etcdEndpoints, "etcd-endpoints", "", "comma-separated etcd client `URLs` (default: start an embedded etcd server)")
	fs.StringVar(&cmd.dataDir, "data-dir", "asymptote-data", "`directory` for the embedded servers' state")
	fs.IntVar(&cmd.natsPort, "nats-port", 4222, "port of the embedded NATS server")
	cmd.natsSec.register(fs)
	cmd.etcdSec.register(fs)
	fs.StringVar(&cmd.health, "health", "", healthUsage)
	cmd.jsSync.register(fs)
	cmd.opts.register(fs)
	return fs
}

// Run runs the command.
func (cmd *coordinatorCommand) Run(ctx context.Context) error {
	env, opts := cmd.env, &cmd.opts
	if _, err := cmd.parse(cmd.flags()); err != nil {
		return err
	}
	if err := opts.validate(); err != nil {
		return err
	}
	log := newLogger(env.Stderr, slog.LevelInfo)
	if (cmd.natsURL == "") != (cmd.etcdEndpoints == "") {
		return usagef("give both -nats-url and -etcd-endpoints for external clusters, or neither for embedded servers")
	}
	cfg := node.Config{Logger: log, NATSURL: cmd.natsURL, NATSSecurity: cmd.natsSec.NATS, EtcdSecurity: cmd.etcdSec.Etcd}
	if cmd.natsURL == "" && (cfg.NATSSecurity.Secure() || cfg.EtcdSecurity.Secure()) {
		return usagef("the TLS and credential flags (-nats-ca, -etcd-cert, ...) are for external servers: give -nats-url and -etcd-endpoints too (the embedded servers listen on loopback without TLS)")
	}
	if _, err := cfg.NATSSecurity.Options(); err != nil {
		return usagef("%v", err)
	}
	if _, _, _, err := cfg.EtcdSecurity.Client(); err != nil {
		return usagef("%v", err)
	}
	// The etcd client only ever says etcd did not answer; a refused or
	// untrusted certificate is reported here by name.
	if err := cfg.EtcdSecurity.Probe(ctx, strings.Split(cmd.etcdEndpoints, ",")); err != nil {
		return err
	}
	if cmd.natsURL == "" {
		cfg.Servers = &devcluster.Config{DataDir: cmd.dataDir, NATSPort: cmd.natsPort, Logger: log, NATSSyncInterval: cmd.jsSync.interval}
	} else {
		cfg.EtcdEndpoints = strings.Split(cmd.etcdEndpoints, ",")
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	if n.Servers != nil {
		fmt.Fprintf(env.Stderr, "embedded NATS at %s, etcd at %s, state in %s\n", n.NATSURL, strings.Join(n.EtcdEndpoints, ","), cmd.dataDir)
	}
	c := opts.coordinator(log)
	if c.Health, err = listenHealth(cmd.health); err != nil {
		return err
	}
	if c.HTTP, err = opts.http.listen(env.Stderr); err == nil {
		c.HTTP, c.HTTPTokens, err = opts.httpSec.apply(c.HTTP)
	}
	if err != nil {
		if c.Health != nil {
			c.Health.Close()
		}
		return err
	}
	if _, err := n.StartCoordinator(c); err != nil {
		return err
	}
	if c.HTTP != nil {
		log.Info("serving the HTTP API", "url", httpURL(c.HTTP))
	}
	return n.Wait()
}

// agentCommand is `asymptote agent`.
type agentCommand struct {
	invocation
	natsURL string
	natsSec natsSecurityFlags
	health  string
	opts    agentOptions
}

// flags declares agent's flags.
func (cmd *agentCommand) flags() *flag.FlagSet {
	fs := newFlagSet(cmd.env, "agent", "[flags]")
	fs.StringVar(&cmd.natsURL, "nats-url", defaultNATSURL, "NATS `URL`")
	cmd.natsSec.register(fs)
	fs.StringVar(&cmd.opts.nodeID, "node-id", defaultNodeID(), "stable, unique `name` of this agent (give each agent on one host its own)")
	fs.StringVar(&cmd.health, "health", "", healthUsage)
	fs.StringVar(&cmd.opts.dataDir, "data-dir", "", "`directory` for the agent's local state: its lock, and its method processes' registry and sockets (default "+defaultAgentDataDir("NODE_ID")+", one per -node-id)")
	cmd.opts.register(fs)
	cmd.opts.registerStore(fs)
	return fs
}

// Run runs the command.
func (cmd *agentCommand) Run(ctx context.Context) error {
	env, opts := cmd.env, &cmd.opts
	if _, err := cmd.parse(cmd.flags()); err != nil {
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
	if _, err := cmd.natsSec.Options(); err != nil {
		return usagef("%v", err)
	}
	log := newLogger(env.Stderr, slog.LevelInfo)
	a, err := opts.agent(ctx, log, hostShare{})
	if err != nil {
		return err
	}
	if a.Health, err = listenHealth(cmd.health); err != nil {
		a.Release()
		return err
	}
	n, err := node.Start(ctx, node.Config{NATSURL: cmd.natsURL, NATSSecurity: cmd.natsSec.NATS, Logger: log, Agents: []node.Agent{a}})
	if err != nil {
		return err
	}
	defer n.Close()
	return n.Wait()
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
