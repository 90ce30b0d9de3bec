package command

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"asymptote.dev/asymptote/coordinator"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/node"
	"asymptote.dev/asymptote/internal/store"
	"asymptote.dev/asymptote/plugins/methods"
	"asymptote.dev/asymptote/plugins/methods/command"
	"asymptote.dev/asymptote/sweep"
)

const defaultNATSURL = "nats://127.0.0.1:4222"

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
	allowUnoffered bool
	history        time.Duration
	http           httpOptions
	httpSec        httpSecurity
	checkpoints    checkpointStore
	// quotasFile holds the teams' quotas, read into quotas by validate.
	quotasFile string
	quotas     map[string]coordinator.Quota
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
	fs.BoolVar(&o.allowUnoffered, "allow-unoffered-methods", false, "accept studies whose method no live agent offers (they wait for one) instead of refusing them at submit")
	fs.Var(&o.http, "http", "`address` of the HTTP API (studies, trials, metric history, fits; docs/python.md), or off (default "+defaultHTTPAddr+", loopback only)")
	o.httpSec.register(fs)
	fs.DurationVar(&o.history, "history-retention", bus.DefaultHistoryRetention, "how long the metric history keeps a report (0: until its study is deleted)")
	fs.IntVar(&o.etcdMaxRequest, "etcd-max-request-bytes", store.DefaultMaxRequestBytes, "the etcd server's --max-request-bytes; the leader sizes its writes by it")
	fs.Var(&o.checkpoints, "checkpoint-store", checkpointStoreUsage)
	fs.StringVar(&o.quotasFile, "team-quotas", "", "JSON `file` of each team's quota of running CPUs, GPUs and trials and its weight in fair share, such as {\"vision\": {\"cpu\": 64, \"gpus\": 8, \"trials\": 32, \"weight\": 2}} (docs/security.md); give every coordinator the same file")
}

const checkpointStoreUsage = "where trials' checkpoints are kept: nats (the JetStream object store, the default), a `directory` every agent and coordinator mounts (NFS, Lustre), or off; agents and coordinators must agree"

// checkpointStore is the -checkpoint-store flag.
type checkpointStore struct{ v node.Checkpoints }

func (c *checkpointStore) String() string {
	switch {
	case c == nil:
		return ""
	case c.v.Off:
		return "off"
	case c.v.Dir != "":
		return c.v.Dir
	}
	return "nats"
}

func (c *checkpointStore) Set(s string) error {
	switch {
	case s == "nats":
		c.v = node.Checkpoints{}
	case s == "off":
		c.v = node.Checkpoints{Off: true}
	case filepath.IsAbs(s):
		c.v = node.Checkpoints{Dir: filepath.Clean(s)}
	default:
		return fmt.Errorf("%q: want nats, off, or an absolute directory such as /shared/asymptote/checkpoints", s)
	}
	return nil
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
	if o.limits.SpecBytes > sweep.MaxSpecBytes {
		return usagef("-max-spec-bytes: %d, over the most the spec parser reads (%d)", o.limits.SpecBytes, sweep.MaxSpecBytes)
	}
	if o.leaseTTL < time.Second {
		return usagef("-lease-ttl: %s, want at least 1s (etcd leases count whole seconds)", o.leaseTTL)
	}
	if o.heartbeatGrace <= 0 {
		return usagef("-heartbeat-grace: %s, want a positive duration such as 10s", o.heartbeatGrace)
	}
	if o.limits.Trials > sweep.MaxTrials {
		return usagef("-max-trials: %d, over the most a spec expands to (%d)", o.limits.Trials, sweep.MaxTrials)
	}
	if o.history < 0 {
		return usagef("-history-retention: %s, want 0 (keep until the study is deleted) or a positive duration such as 2160h", o.history)
	}
	if o.quotasFile != "" {
		data, err := os.ReadFile(o.quotasFile)
		if err != nil {
			return usagef("-team-quotas: %v", err)
		}
		if o.quotas, err = coordinator.ParseQuotas(o.quotasFile, data); err != nil {
			return usagef("-team-quotas: %v", err)
		}
	}
	if o.etcdMaxRequest < 128<<10 {
		return usagef("-etcd-max-request-bytes: %d, want at least 131072 (etcd's default is %d)", o.etcdMaxRequest, store.DefaultMaxRequestBytes)
	}
	return nil
}

// coordinator returns the coordinator to start; its HTTP API is the
// caller's.
func (o *coordinatorOptions) coordinator(log *slog.Logger) node.Coordinator {
	return node.Coordinator{Config: coordinator.Config{
		ID: o.id, Logger: log,
		LeaseTTL: o.leaseTTL, HeartbeatGrace: o.heartbeatGrace, StreamReplicas: o.replicas, HistoryRetention: o.history,
		QueueBelow: o.queueBelow, Limits: o.limits, EtcdMaxRequestBytes: o.etcdMaxRequest,
		AllowUnofferedMethods: o.allowUnoffered, Quotas: o.quotas,
	}, Checkpoints: o.checkpoints.v}
}

// agentOptions are the agent's tunables shared by `dev` and `agent`.
type agentOptions struct {
	nodeID       string
	dataDir      string
	pluginDir    string
	allow        listFlag
	programFlags listFlag
	cpus         optionalFloat
	memory       string
	queue        float64
	heartbeat    time.Duration
	testMethods  bool
	passEnv      listFlag
	grace        time.Duration
	ckptGrace    time.Duration
	checkpoints  checkpointStore

	// Set by validate.
	memBytes  int64
	allowlist map[string]string
	// programs is the command method's allowlist: path to SHA-256.
	programs map[string]string
}

func (o *agentOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.pluginDir, "plugin-dir", "", "`directory` of external method binaries")
	fs.Var(&o.allow, "allow", "allow an external method: `NAME=SHA256` of its binary (repeatable)")
	fs.Var(&o.programFlags, "allow-program", "let the command method run a program or interpreter: `PATH` (pinned as the file is now) or PATH=SHA256 (repeatable; without any, the agent does not offer the command method)")
	fs.Var(&o.cpus, "cpus", "CPU `cores` to offer (default: all the host has)")
	fs.StringVar(&o.memory, "memory", "", "memory to offer, such as 16GiB (default: all the host has)")
	fs.Float64Var(&o.queue, "queue", 1, "accept attempts beyond the offered resources, up to this `multiple` of them, to start the moment a running one ends (0: none)")
	fs.DurationVar(&o.heartbeat, "heartbeat", time.Second, "heartbeat interval")
	fs.BoolVar(&o.testMethods, "test-methods", false, "also offer the methods that misbehave on request (faulty), for testing fault handling; never on an agent that runs real work")
	fs.Var(&o.passEnv, "pass-env", "environment `variables` the agent passes on to methods, comma-separated, NAME or a PREFIX* (repeatable; methods otherwise get only a short list such as PATH, HOME, LANG and CUDA_*: no bus URLs or credentials; docs/security.md)")
	fs.DurationVar(&o.grace, "shutdown-grace", 10*time.Second, "on SIGTERM or a drain, how long to checkpoint, stop and report running attempts before exiting; keep it under what the cluster waits before SIGKILL (SLURM's KillWait, Kubernetes' terminationGracePeriodSeconds)")
	fs.DurationVar(&o.ckptGrace, "checkpoint-grace", 0, "of -shutdown-grace, how long running attempts get to save and upload a checkpoint before they are stopped (default half of it)")
}

// registerStore registers -checkpoint-store for the agent command (dev
// takes the coordinator's).
func (o *agentOptions) registerStore(fs *flag.FlagSet) {
	fs.Var(&o.checkpoints, "checkpoint-store", checkpointStoreUsage)
}

// validate checks the flags, naming the flag and what it wants, before
// anything starts: a bad value must not quietly become "all the host
// has" or a default.
func (o *agentOptions) validate() error {
	if o.cpus.set && !(o.cpus.v > 0 && !math.IsInf(o.cpus.v, 0)) {
		return usagef("-cpus %g: want a positive number of cores, such as 4 or 0.5 (leave -cpus out to offer all the host has)", o.cpus.v)
	}
	o.memBytes = 0
	if o.memory != "" {
		m, err := parseBytes(o.memory)
		if err != nil {
			return usagef("-memory: %v (leave -memory out to offer all the host has)", err)
		}
		if m <= 0 {
			return usagef("-memory %q: want a positive size, such as 16GiB (leave -memory out to offer all the host has)", o.memory)
		}
		o.memBytes = m
	}
	if o.queue < 0 || math.IsNaN(o.queue) || math.IsInf(o.queue, 0) {
		return usagef("-queue %g: want a multiple of at least 0, such as 1 (0 queues nothing)", o.queue)
	}
	if o.heartbeat <= 0 {
		return usagef("-heartbeat %s: want a positive interval, such as 1s", o.heartbeat)
	}
	if o.grace <= 0 {
		return usagef("-shutdown-grace %s: want a positive duration, such as 25s", o.grace)
	}
	if o.ckptGrace < 0 || o.ckptGrace > o.grace {
		return usagef("-checkpoint-grace %s: want a duration between 0 (half of -shutdown-grace) and -shutdown-grace (%s)", o.ckptGrace, o.grace)
	}
	allow, err := parseAllow(o.allow)
	if err != nil {
		return err
	}
	o.allowlist = allow
	if o.programs, err = parsePrograms(o.programFlags); err != nil {
		return err
	}
	return nil
}

// hostShare is one agent's part of a host that n agents share (`asymptote
// dev -agents n`): agent index of n. The zero value is the whole host.
type hostShare struct{ index, of int }

// offer returns what the agent offers of host: -cpus and -memory when
// given, else its share of the host's CPUs and memory; and its share of
// the GPUs, dealt out in turn, so no two agents on one host hand the same
// GPU to trials. Call validate first.
func (o *agentOptions) offer(host bus.Resources, share hostShare) bus.Resources {
	n := max(share.of, 1)
	res := bus.Resources{CPU: host.CPU / float64(n), Memory: host.Memory / int64(n)}
	if o.cpus.set {
		res.CPU = o.cpus.v
	}
	if o.memBytes > 0 {
		res.Memory = o.memBytes
	}
	for i, g := range host.GPUs {
		if i%n == share.index {
			res.GPUs = append(res.GPUs, g)
		}
	}
	return res
}

// agent returns the agent to start for its share of this host, holding
// the lock on its data directory until the agent returned. Call validate
// first.
func (o *agentOptions) agent(ctx context.Context, log *slog.Logger, share hostShare) (a node.Agent, err error) {
	if o.dataDir == "" {
		return a, usagef("-data-dir is required")
	}
	unlock, err := lockDataDir(o.dataDir, o.nodeID)
	if err != nil {
		return a, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	host, err := fingerprintHost(ctx)
	if err != nil {
		return a, fmt.Errorf("fingerprint host: %w", err)
	}
	workDir := filepath.Join(o.dataDir, "methods")
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return a, err
	}
	names, builtins := methods.Names(), methods.Names()
	if o.testMethods {
		builtins = append(builtins, methods.TestNames()...)
		names = append(names, methods.TestNames()...)
	}
	names, methodEnv := offerMethods(log, names, o.allowlist, o.programs, bus.Allowlist{}, nil)
	return node.Agent{
		Config: node.AgentConfig{
			NodeID: o.nodeID, Resources: o.offer(host, share), MethodNames: names, MethodEnv: methodEnv,
			HeartbeatInterval: o.heartbeat, Queue: o.queue, Logger: log,
			ShutdownGrace: o.grace, CheckpointGrace: o.ckptGrace,
			ScratchDir: filepath.Join(o.dataDir, "checkpoints"),
		},
		Checkpoints: o.checkpoints.v,
		Manager: &node.ManagerConfig{
			Builtins:  builtins,
			PassEnv:   o.passEnv,
			PluginDir: o.pluginDir,
			Allowlist: o.allowlist,
			WorkDir:   workDir,
			Logger:    log,
		},
		Release: unlock,
		// The cluster's allowlist adds to the flags': its methods whose
		// executables match, and its programs.
		Allowlist: func(l bus.Allowlist, external []string) ([]string, map[string][]string) {
			base := slices.Clone(builtins)
			return offerMethods(log, base, o.allowlist, o.programs, l, external)
		},
	}, nil
}

// offerMethods returns the methods an agent offers and their plugins'
// environment: the built-in ones (the command method only when some
// program is allowed), those its -allow flags allow, and the external
// methods of the cluster's allowlist that the method manager verified;
// the command method's program allowlist is its -allow-program flags'
// with the cluster's programs added (the flags win where both name a
// path). A cluster program is pinned by the path it resolves to on this
// host; one that does not resolve is left out and logged.
func offerMethods(log *slog.Logger, builtins []string, allow, programs map[string]string, cluster bus.Allowlist, external []string) ([]string, map[string][]string) {
	progs := maps.Clone(programs)
	for path, sum := range cluster.Programs {
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			log.Warn("the cluster allows a program this host lacks", "program", path, "error", err)
			continue
		}
		if _, local := progs[real]; !local {
			if progs == nil {
				progs = map[string]string{}
			}
			progs[real] = sum
		}
	}
	names := builtins
	var env map[string][]string
	if len(progs) == 0 {
		// Nothing to run: studies of the command method wait for an
		// agent that allows programs.
		names = slices.DeleteFunc(names, func(n string) bool { return n == sweep.CommandMethod })
	} else {
		b, _ := json.Marshal(progs)
		env = map[string][]string{sweep.CommandMethod: {command.AllowEnv + "=" + string(b)}}
	}
	for n := range allow {
		names = append(names, n)
	}
	for _, n := range external {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, env
}

func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil || bus.ValidToken(h) != nil {
		return "node"
	}
	return h
}

// defaultAgentDataDir is the agent's data directory when -data-dir is not
// given: one per node ID, so agents on one host that are given their own
// -node-id get their own directories too.
func defaultAgentDataDir(nodeID string) string {
	return filepath.Join(os.TempDir(), "asymptote-agent-"+nodeID)
}

// lockDataDir takes an exclusive lock on the agent data directory dir
// (creating it), so that two agents on one host never share one: they
// would kill each other's method processes as orphans. The lock dies with
// the process; release drops it sooner.
func lockDataDir(dir, nodeID string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("-data-dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, "agent.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		// Typically another user's agent's directory (it is private).
		return nil, fmt.Errorf("-data-dir %s: %w; give each agent on one host its own -node-id (the default -data-dir follows it) or -data-dir", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, usagef("-data-dir %s is in use by another agent on this host (node ID %q?): give each agent on one host its own -node-id (the default -data-dir follows it) or -data-dir", dir, nodeID)
		}
		return nil, fmt.Errorf("-data-dir %s: lock %s: %w", dir, path, err)
	}
	return func() { f.Close() }, nil
}

// optionalFloat is a float flag that remembers whether it was given, so
// that a given 0 is told apart from the default.
type optionalFloat struct {
	v   float64
	set bool
}

func (f *optionalFloat) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.FormatFloat(f.v, 'g', -1, 64)
}

func (f *optionalFloat) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return errors.New("not a number")
	}
	f.v, f.set = v, true
	return nil
}

// Get implements flag.Getter.
func (f *optionalFloat) Get() any { return f.v }
