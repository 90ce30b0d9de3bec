package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"asymptote.dev/asymptote/agent"
	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/plugins/methods"
	"asymptote.dev/asymptote/sweep"
)

const defaultNATSURL = "nats://127.0.0.1:4222"

// connectNATS dials NATS with reconnects that never give up: agents and
// coordinators outlive NATS restarts.
func connectNATS(url, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("reconnected to NATS", "url", c.ConnectedUrl()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// connectEtcd returns an etcd client for endpoints.
func connectEtcd(endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      nopZap(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %v: %w", endpoints, err)
	}
	return cli, nil
}

// coordinatorOptions are the coordinator's tunables shared by `dev` and
// `coordinator`.
type coordinatorOptions struct {
	id             string
	leaseTTL       time.Duration
	heartbeatGrace time.Duration
	queueBelow     time.Duration
	replicas       int
	limits         coordinator.Limits
	etcdMaxRequest int
}

func (o *coordinatorOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.id, "id", "", "coordinator `name` in the election (default: host name and pid)")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", 4*time.Second, "leader lease; a standby takes over within about this long after the leader dies")
	fs.DurationVar(&o.queueBelow, "queue-below", time.Minute, "fill agents' queues (agent -queue) for studies whose trials take less than this on average; negative: never")
	fs.DurationVar(&o.heartbeatGrace, "heartbeat-grace", 10*time.Second, "how long an agent may be silent before its attempts are marked stale")
	fs.IntVar(&o.replicas, "stream-replicas", 1, "replicas of the JetStream events stream (3 on a three-node NATS cluster)")
	fs.IntVar(&o.limits.SpecBytes, "max-spec-bytes", coordinator.DefaultSpecBytes, "largest study spec accepted, in `bytes`")
	fs.IntVar(&o.limits.ParamBytes, "max-param-bytes", coordinator.DefaultParamBytes, "largest parameter value accepted (JSON-encoded), in `bytes`")
	fs.IntVar(&o.limits.Trials, "max-trials", coordinator.DefaultTrials, "most trials one study may hold")
	fs.IntVar(&o.etcdMaxRequest, "etcd-max-request-bytes", store.DefaultMaxRequestBytes, "the etcd server's --max-request-bytes; the leader sizes its writes by it")
}

// validate checks the limits, naming the flag.
func (o *coordinatorOptions) validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"max-spec-bytes", o.limits.SpecBytes}, {"max-param-bytes", o.limits.ParamBytes}, {"max-trials", o.limits.Trials}, {"etcd-max-request-bytes", o.etcdMaxRequest}} {
		if f.v <= 0 {
			return usagef("-%s: %d, want a positive number", f.name, f.v)
		}
	}
	if o.limits.Trials > sweep.MaxTrials {
		return usagef("-max-trials: %d, over the most a spec expands to (%d)", o.limits.Trials, sweep.MaxTrials)
	}
	if o.etcdMaxRequest < 128<<10 {
		return usagef("-etcd-max-request-bytes: %d, want at least 131072 (etcd's default is %d)", o.etcdMaxRequest, store.DefaultMaxRequestBytes)
	}
	return nil
}

func (o *coordinatorOptions) config(etcd *clientv3.Client, nc *nats.Conn, log *slog.Logger) coordinator.Config {
	return coordinator.Config{
		ID: o.id, Etcd: etcd, NATS: nc, Logger: log,
		LeaseTTL: o.leaseTTL, HeartbeatGrace: o.heartbeatGrace, StreamReplicas: o.replicas,
		QueueBelow: o.queueBelow, Limits: o.limits, EtcdMaxRequestBytes: o.etcdMaxRequest,
	}
}

// agentOptions are the agent's tunables shared by `dev` and `agent`.
type agentOptions struct {
	nodeID    string
	dataDir   string
	pluginDir string
	allow     listFlag
	cpus      float64
	memory    string
	queue     float64
	heartbeat time.Duration
}

func (o *agentOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.pluginDir, "plugin-dir", "", "`directory` of external method binaries")
	fs.Var(&o.allow, "allow", "allow an external method: `NAME=SHA256` of its binary (repeatable)")
	fs.Float64Var(&o.cpus, "cpus", 0, "CPU cores to offer (default: all the host has)")
	fs.StringVar(&o.memory, "memory", "", "memory to offer, such as 16GiB (default: all the host has)")
	fs.Float64Var(&o.queue, "queue", 1, "accept attempts beyond the offered resources, up to this `multiple` of them, to start the moment a running one ends (0: none)")
	fs.DurationVar(&o.heartbeat, "heartbeat", time.Second, "heartbeat interval")
}

// newAgent builds an agent and its method manager.
func (o *agentOptions) newAgent(ctx context.Context, nc *nats.Conn, log *slog.Logger) (*agent.Agent, *methodmgr.Manager, error) {
	res, err := fingerprintHost(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("fingerprint host: %w", err)
	}
	if o.cpus > 0 {
		res.CPU = o.cpus
	}
	if o.memory != "" {
		m, err := parseBytes(o.memory)
		if err != nil {
			return nil, nil, usagef("-memory: %v", err)
		}
		res.Memory = m
	}
	allow, err := parseAllow(o.allow)
	if err != nil {
		return nil, nil, err
	}
	if o.dataDir == "" {
		return nil, nil, usagef("-data-dir is required")
	}
	if o.queue < 0 || math.IsNaN(o.queue) || math.IsInf(o.queue, 0) {
		return nil, nil, usagef("-queue %g: want a multiple of at least 0, such as 1 (0 queues nothing)", o.queue)
	}
	workDir := methodWorkDir(o.dataDir)
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, nil, err
	}
	mgr, err := methodmgr.New(methodmgr.Config{
		Builtins:  methods.Names(),
		PluginDir: o.pluginDir,
		Allowlist: allow,
		WorkDir:   workDir,
		Logger:    log,
	})
	if err != nil {
		return nil, nil, err
	}
	names := methods.Names()
	for n := range allow {
		names = append(names, n)
	}
	a, err := agent.New(agent.Config{
		NodeID: o.nodeID, NATS: nc, Resources: res, Methods: mgr, MethodNames: names,
		HeartbeatInterval: o.heartbeat, Queue: o.queue, Logger: log,
	})
	if err != nil {
		mgr.Close()
		return nil, nil, err
	}
	return a, mgr, nil
}

func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil || bus.ValidToken(h) != nil {
		return "node"
	}
	return h
}

// methodWorkDir returns the directory for method plugins' sockets and pid
// registry. Unix socket paths are limited to about 100 bytes, so a deep
// data directory gets a short stand-in under the system temp directory,
// named after a hash of the data directory so a restarted agent finds it
// again (and cleans up what its predecessor left).
func methodWorkDir(dataDir string) string {
	dir := filepath.Join(dataDir, "methods")
	if len(dir) <= 40 {
		return dir
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(os.TempDir(), "asymptote-"+hex.EncodeToString(sum[:6]))
}
