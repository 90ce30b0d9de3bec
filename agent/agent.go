// Package agent runs on every GPU or CPU host. It heartbeats its resources
// to the leader coordinator over NATS, accepts dispatched trial attempts
// that fit what it has free, runs each through a method plugin, streams the
// method's metrics, and publishes each attempt's outcome to JetStream, where
// it waits for a coordinator even if none is up.
//
// An agent never talks to etcd: the coordinator is the only writer of
// cluster state.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"asymptote.dev/asymptote/agent/methodmgr"
	"asymptote.dev/asymptote/internal/backoff"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/internal/checkpoint"
	"asymptote.dev/asymptote/internal/resource"
	"asymptote.dev/asymptote/plugins/sdk"
)

// MethodRunner runs one attempt of a trial in a method plugin.
// *methodmgr.Manager implements it.
type MethodRunner interface {
	Run(ctx context.Context, r methodmgr.Run, report func(sdk.Metrics) error) (*sdk.Result, error)
}

var _ MethodRunner = (*methodmgr.Manager)(nil)

// Config configures an agent.
type Config struct {
	// NodeID names the host; it must be stable across restarts and unique
	// in the cluster.
	NodeID string
	// NATS is the connection to the bus.
	NATS *nats.Conn
	// Resources are what the agent offers to trials.
	Resources bus.Resources
	// Methods runs method plugins.
	Methods MethodRunner
	// MethodNames lists the methods this agent can run (reported to the
	// coordinator for operators).
	MethodNames []string
	// MethodEnv is extra environment for the plugins of some methods, by
	// method name (the command method's program allowlist).
	MethodEnv map[string][]string
	// Allowlist applies the cluster's allowlist that a heartbeat reply
	// brings (the leader sends it when it changed) and returns the
	// methods the agent offers from then on, with their environment,
	// replacing MethodNames and MethodEnv. nil: the agent keeps to
	// MethodNames and MethodEnv and ignores the cluster's list.
	Allowlist func(bus.Allowlist) (names []string, env map[string][]string)
	// HeartbeatInterval is the period of heartbeats (default 1s).
	HeartbeatInterval time.Duration
	// ShutdownGrace bounds how long a stopping agent waits for running
	// attempts to stop and their outcomes to be published (default 10s).
	ShutdownGrace time.Duration
	// Queue is how far beyond its resources the agent accepts attempts,
	// as a multiple of its CPU and memory: an attempt that does not fit
	// what is free waits on the agent and starts the moment a running one
	// ends, without a round trip to the coordinator. 0 queues nothing;
	// the leader fills the queue only for studies of short trials.
	Queue float64
	// Checkpoints is where attempts' checkpoints are stored so they
	// outlive this host; nil keeps none (methods are told so, and every
	// attempt starts from scratch).
	Checkpoints checkpoint.Store
	// ScratchDir holds attempts' checkpoint files on this host while they
	// are written, uploaded and restored; it must be this agent's alone,
	// since the agent empties it when it starts (default: a new directory
	// in the system's temporary directory).
	ScratchDir string
	// CheckpointGrace is how long, of ShutdownGrace, a stopping agent
	// waits for each running attempt to save and store a checkpoint
	// before it stops it (default half of ShutdownGrace).
	CheckpointGrace time.Duration
	// RestoreWait is how long a new attempt waits for an unreachable
	// checkpoint store (NATS restarting, a mount coming back) before it
	// passes over the checkpoint (default 30s): starting from scratch
	// loses all the trial's work, waiting loses seconds.
	RestoreWait time.Duration
	// Logger receives lifecycle and error logs.
	Logger *slog.Logger
}

// Agent is a running node agent.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	boot string
	js   jetstream.JetStream
	// publishing bounds every publish of an event: it outlives Run's
	// context by the shutdown grace, so the outcomes of attempts stopped
	// at shutdown still go out, and ends then, so no retry loop outlives
	// the agent. Set by Run before anything can publish.
	publishing context.Context

	// versions caches the version each method reports of itself.
	versions versionCache

	mu sync.Mutex
	// running holds every accepted attempt, queued ones included, so
	// heartbeats report them all.
	running map[bus.AttemptRef]*attempt
	// queue holds accepted attempts waiting for resources, in arrival
	// order; queuedCPU and queuedMem are what they will need.
	queue     []*attempt
	queuedCPU float64
	queuedMem int64
	usedCPU   float64
	usedMem   int64
	// usedGPU marks GPUs of running and queued attempts: the leader
	// assigns GPU indices at dispatch, so a queued attempt holds its own.
	usedGPU  map[int]bool
	stopping bool
	wg       sync.WaitGroup
	// names and env are the methods offered and their environment:
	// MethodNames and MethodEnv until the cluster's allowlist changes
	// them; allow is the version of that list applied ("" none).
	names []string
	env   map[string][]string
	allow string
}

// attempt is one attempt accepted by this agent.
type attempt struct {
	d      bus.Dispatch
	cancel context.CancelCauseFunc // nil until started
	// queued is set while the attempt waits in Agent.queue; an attempt
	// dropped from the queue has neither queued nor cancel.
	queued bool
	// ckpt asks the running method for a checkpoint now; up stores its
	// checkpoints; ended is closed when the method has returned. Set when
	// the attempt starts.
	ckpt  chan methodmgr.CheckpointRequest
	up    *uploader
	ended chan struct{}
}

// Causes of an attempt's cancellation, which decide the outcome reported.
var (
	errCancelled = errors.New("cancelled by the coordinator")
	errStopping  = errors.New("agent is shutting down")
)

// New returns an agent; it does no I/O until Run.
func New(cfg Config) (*Agent, error) {
	if cfg.NATS == nil || cfg.Methods == nil {
		return nil, errors.New("agent: NATS and Methods are required")
	}
	if err := bus.ValidToken(cfg.NodeID); err != nil {
		return nil, fmt.Errorf("agent: node ID: %w", err)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.Queue < 0 {
		return nil, fmt.Errorf("agent: queue %g: must be zero or positive", cfg.Queue)
	}
	if cfg.RestoreWait <= 0 {
		cfg.RestoreWait = 30 * time.Second
	}
	if cfg.CheckpointGrace <= 0 || cfg.CheckpointGrace > cfg.ShutdownGrace {
		cfg.CheckpointGrace = cfg.ShutdownGrace / 2
	}

	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	if cfg.ScratchDir == "" {
		// This process's own: agents of one node ID in several test
		// processes must not clean up each other's.
		cfg.ScratchDir = filepath.Join(os.TempDir(), "asymptote-scratch-"+cfg.NodeID+"-"+hex.EncodeToString(b))
	}
	return &Agent{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "agent", "node_id", cfg.NodeID),
		boot:    hex.EncodeToString(b),
		js:      js,
		running: map[bus.AttemptRef]*attempt{},
		usedGPU: map[int]bool{},
		names:   cfg.MethodNames,
		env:     cfg.MethodEnv,
	}, nil
}

// methodEnv is the extra environment of method's plugins.
func (a *Agent) methodEnv(method string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.env[method]
}

// Run serves dispatches and heartbeats until ctx ends or the agent is
// asked to drain (bus.DrainSubject, `asymptote drain`), then stops running
// attempts (reporting them preempted, so they run again first elsewhere)
// and returns within the shutdown grace: outcomes not published by then
// are given up, and the coordinator marks their attempts stale. Call it
// once.
func (a *Agent) Run(ctx context.Context) error {
	ctx, drain := context.WithCancel(ctx)
	defer drain()
	publishing, stopPublishing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPublishing()
	a.publishing = publishing
	// Checkpoint files a killed predecessor left behind (the directory is
	// the agent's own: its data directory is locked) are in the store, or
	// were never stored and are of no use.
	if err := os.RemoveAll(a.cfg.ScratchDir); err != nil {
		a.log.Warn("old checkpoint files not removed", "dir", a.cfg.ScratchDir, "error", err)
	}
	defer os.RemoveAll(a.cfg.ScratchDir)
	nc := a.cfg.NATS
	dsub, err := nc.Subscribe(bus.DispatchSubject(a.cfg.NodeID), a.onDispatch)
	if err != nil {
		return fmt.Errorf("agent: subscribe: %w", err)
	}
	csub, err := nc.Subscribe(bus.CancelSubject(a.cfg.NodeID), func(m *nats.Msg) {
		var c bus.Cancel
		if err := bus.Decode(m.Data, &c); err != nil {
			a.log.Warn("dropping malformed cancel", "error", err)
			return
		}
		for _, r := range c.Attempts {
			a.stop(r, fmt.Errorf("%w: %s", errCancelled, c.Reason))
		}
	})
	if err != nil {
		_ = dsub.Unsubscribe()
		return fmt.Errorf("agent: subscribe: %w", err)
	}
	drsub, err := nc.Subscribe(bus.DrainSubject(a.cfg.NodeID), func(m *nats.Msg) {
		a.mu.Lock()
		n := len(a.running)
		a.mu.Unlock()
		a.log.Info("asked to drain: taking no more work and preempting what runs", "attempts", n)
		_ = m.Respond(bus.Encode(&bus.DrainReply{Node: a.cfg.NodeID, Preempted: n}))
		drain()
	})
	if err != nil {
		_ = dsub.Unsubscribe()
		_ = csub.Unsubscribe()
		return fmt.Errorf("agent: subscribe: %w", err)
	}
	defer func() { _ = drsub.Unsubscribe() }()
	a.log.Info("agent started", "cpu", a.cfg.Resources.CPU, "memory", a.cfg.Resources.Memory, "gpus", len(a.cfg.Resources.GPUs), "boot", a.boot)
	a.heartbeat(ctx)
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
			a.heartbeat(ctx)
		}
	}
	// Stop intake, stop what runs, publish what finished, all within the
	// grace.
	grace, endGrace := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
	defer endGrace()
	_ = dsub.Unsubscribe()
	_ = csub.Unsubscribe()
	a.mu.Lock()
	a.stopping = true
	var refs []bus.AttemptRef
	var checkpointing []*attempt
	for r, at := range a.running {
		refs = append(refs, r)
		if at.ckpt != nil {
			checkpointing = append(checkpointing, at)
		}
	}
	a.mu.Unlock()
	// Tell the leader at once, so it sends nothing more here: a trial
	// preempted below must run again elsewhere.
	a.heartbeat(grace)
	// Each running attempt first gets the chance to save its work, so
	// the attempt that runs it next resumes where this one stopped.
	var saving sync.WaitGroup
	for _, at := range checkpointing {
		saving.Go(func() { a.checkpointBeforeStop(grace, at) })
	}
	saving.Wait()
	for _, r := range refs {
		a.stop(r, errStopping)
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-grace.Done():
		a.mu.Lock()
		left := len(a.running)
		a.mu.Unlock()
		a.log.Warn("shutdown grace over with attempts still running or their outcomes unpublished; the coordinator will mark them stale",
			"attempts", left, "grace", a.cfg.ShutdownGrace)
		// Publishes still retrying give up now.
		stopPublishing()
	}
	// A last heartbeat, if the grace leaves time for it, tells the
	// coordinator at once what no longer runs.
	a.heartbeat(grace)
	a.log.Info("agent stopped")
	return nil
}

func (a *Agent) heartbeat(ctx context.Context) {
	a.mu.Lock()
	hb := bus.Heartbeat{
		Node: a.cfg.NodeID, Boot: a.boot, Resources: a.cfg.Resources, Queue: a.cfg.Queue,
		Methods: a.names, Sent: time.Now(), Draining: a.stopping, Allow: a.allow,
	}
	for r := range a.running {
		hb.Running = append(hb.Running, r)
	}
	a.mu.Unlock()
	sort.Slice(hb.Running, func(i, j int) bool { return hb.Running[i].String() < hb.Running[j].String() })
	rctx, cancel := context.WithTimeout(ctx, max(a.cfg.HeartbeatInterval, time.Second))
	defer cancel()
	msg, err := a.cfg.NATS.RequestWithContext(rctx, bus.HeartbeatSubject(a.cfg.NodeID), bus.Encode(&hb))
	if err != nil {
		// No leader right now; attempts keep running and their outcomes
		// wait in JetStream.
		a.log.Debug("heartbeat unanswered", "error", err)
		return
	}
	var reply bus.HeartbeatReply
	if err := bus.Decode(msg.Data, &reply); err != nil {
		a.log.Warn("malformed heartbeat reply", "error", err)
		return
	}
	for _, r := range reply.Cancel {
		a.stop(r, fmt.Errorf("%w: the attempt is no longer current", errCancelled))
	}
	if reply.Allow != nil && a.cfg.Allowlist != nil {
		names, env := a.cfg.Allowlist(*reply.Allow)
		a.mu.Lock()
		a.names, a.env, a.allow = names, env, reply.Allow.Version
		a.mu.Unlock()
		a.log.Info("cluster allowlist applied", "version", reply.Allow.Version, "methods", len(reply.Allow.Methods), "programs", len(reply.Allow.Programs), "offered", names)
	}
}

// stop stops an accepted attempt: a running one through its context, a
// queued one by taking it off the queue and reporting its outcome.
func (a *Agent) stop(r bus.AttemptRef, cause error) {
	a.mu.Lock()
	at := a.running[r]
	if at == nil {
		a.mu.Unlock()
		return
	}
	if !at.queued {
		cancel := at.cancel
		a.mu.Unlock()
		if cancel != nil { // nil: dropped from the queue, outcome on its way
			a.log.Info("stopping attempt", "study", r.Study, "trial_id", r.Trial, "attempt", r.Attempt, "reason", cause)
			cancel(cause)
		}
		return
	}
	at.queued = false
	a.queue = slices.DeleteFunc(a.queue, func(q *attempt) bool { return q == at })
	a.queuedCPU -= at.d.Resources.CPU
	if a.queuedCPU < 1e-9 {
		a.queuedCPU = 0
	}
	a.queuedMem -= at.d.Resources.Memory
	for _, g := range at.d.GPUs {
		delete(a.usedGPU, g)
	}
	a.wg.Add(1)
	a.mu.Unlock()
	a.log.Info("dropping queued attempt", "study", r.Study, "trial_id", r.Trial, "attempt", r.Attempt, "reason", cause)
	go func() {
		defer a.wg.Done()
		ev := &bus.Event{AttemptRef: r, Kind: bus.EventFinished, Node: a.cfg.NodeID, Time: time.Now()}
		ev.Outcome, ev.Error = classify(nil, cause, cause)
		a.publish(ev)
		a.mu.Lock()
		delete(a.running, r)
		a.mu.Unlock()
	}()
}

func (a *Agent) onDispatch(m *nats.Msg) {
	var b bus.DispatchBatch
	if err := bus.Decode(m.Data, &b); err != nil {
		a.log.Warn("refusing malformed dispatch", "error", err)
		// Answer with no replies: the leader treats every attempt it
		// sent as refused.
		_ = m.Respond(bus.Encode(&bus.DispatchBatchReply{}))
		return
	}
	reply := bus.DispatchBatchReply{Replies: make([]bus.DispatchReply, len(b.Dispatches))}
	for i, d := range b.Dispatches {
		reply.Replies[i].Accepted, reply.Replies[i].Reason = a.admit(d)
	}
	_ = m.Respond(bus.Encode(&reply))
}

// admit accepts d if it fits what is free, starting it, or fits the queue,
// where it waits for a running attempt to end. A repeated dispatch of an
// accepted attempt is accepted without starting it twice.
func (a *Agent) admit(d bus.Dispatch) (bool, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping {
		return false, "agent is shutting down"
	}
	if _, ok := a.running[d.AttemptRef]; ok {
		return true, ""
	}
	res := a.cfg.Resources
	if !a.fits(d.Resources, 0, 0, 1) {
		return false, fmt.Sprintf("the trial needs more than the agent has (cpu %.2f of %.2f, memory %d of %d)", d.Resources.CPU, res.CPU, d.Resources.Memory, res.Memory)
	}
	for _, g := range d.GPUs {
		if a.usedGPU[g] || !hasGPU(res.GPUs, g) {
			return false, fmt.Sprintf("GPU %d is busy or absent", g)
		}
	}
	at := &attempt{d: d}
	switch {
	case a.fitsNow(d.Resources):
		a.start(at, nil)
	case a.fits(d.Resources, a.usedCPU+a.queuedCPU, a.usedMem+a.queuedMem, 1+a.cfg.Queue):
		at.queued = true
		a.queue = append(a.queue, at)
		a.queuedCPU += d.Resources.CPU
		a.queuedMem += d.Resources.Memory
	default:
		return false, fmt.Sprintf("not enough free resources (cpu %.2f of %.2f used, %.2f queued; memory %d of %d used, %d queued; queue %g)",
			a.usedCPU, res.CPU, a.queuedCPU, a.usedMem, res.Memory, a.queuedMem, a.cfg.Queue)
	}
	a.running[d.AttemptRef] = at
	for _, g := range d.GPUs {
		a.usedGPU[g] = true
	}
	return true, ""
}

// fitsNow reports whether r fits what running attempts leave free; the
// caller holds a.mu.
func (a *Agent) fitsNow(r bus.Resources) bool {
	return a.fits(r, a.usedCPU, a.usedMem, 1)
}

// fits applies the leader's placement rule, resource.Fits, to the
// agent's resources with usedCPU and usedMem taken, scaled by scale.
// GPUs are left out: the leader assigned them by index, which admit
// checks, and a queued attempt already holds its own.
func (a *Agent) fits(r bus.Resources, usedCPU float64, usedMem int64, scale float64) bool {
	r.GPUCount = 0
	return resource.Fits(r, a.cfg.Resources, resource.Resources{CPU: usedCPU, Memory: usedMem}, scale)
}

// start runs an accepted attempt; the caller holds a.mu. The timeout
// counts from here, not from the dispatch.
// start runs a (queued or new) attempt; after names the attempt that
// ended and freed its resources, if one did.
func (a *Agent) start(at *attempt, after *bus.AttemptRef) {
	d := at.d
	// Taken before the timeout starts counting, so an attempt that timed
	// out reports a duration of at least its timeout.
	start := time.Now()
	ctx, cancel := context.WithCancelCause(context.Background())
	if d.Timeout > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeoutCause(ctx, time.Duration(d.Timeout), errTimeout)
		inner := cancel
		cancel = func(err error) { inner(err); c2() }
	}
	at.cancel, at.queued = cancel, false
	at.ckpt = make(chan methodmgr.CheckpointRequest, 1)
	at.ended = make(chan struct{})
	a.usedCPU += d.Resources.CPU
	a.usedMem += d.Resources.Memory
	a.wg.Add(1)
	go a.run(ctx, at, cancel, start, after)
}

// checkpointBeforeStop asks a running attempt's method for a checkpoint
// and waits, within the checkpoint grace and ctx, until one newer than
// what it had is stored or the method has returned.
func (a *Agent) checkpointBeforeStop(ctx context.Context, at *attempt) {
	a.mu.Lock()
	up := at.up
	a.mu.Unlock()
	if a.cfg.Checkpoints == nil || up == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CheckpointGrace)
	defer cancel()
	before, stored := up.latest()
	found := make(chan bool, 1)
	select {
	case at.ckpt <- methodmgr.CheckpointRequest{Reason: "the agent is stopping", Found: found}:
	default: // a request is already waiting
	}
	select {
	case ok := <-found:
		if !ok {
			return // the method is not running, or keeps no checkpoints
		}
	case <-at.ended:
		return
	case <-ctx.Done():
		return
	}
	for {
		select {
		case <-stored:
			var step int64
			step, stored = up.latest()
			if step > before {
				return
			}
		case <-at.ended:
			return
		case <-ctx.Done():
			a.log.Warn("no checkpoint stored within the checkpoint grace; stopping the attempt, which resumes from its last one",
				"study", at.d.Study, "trial_id", at.d.Trial, "attempt", at.d.Attempt, "grace", a.cfg.CheckpointGrace)
			return
		}
	}
}

// startQueued starts the queued attempts that now fit, oldest first; the
// caller holds a.mu. after is the attempt whose end made room.
func (a *Agent) startQueued(after *bus.AttemptRef) {
	if a.stopping {
		return
	}
	kept := a.queue[:0]
	for _, at := range a.queue {
		if !a.fitsNow(at.d.Resources) {
			kept = append(kept, at)
			continue
		}
		a.queuedCPU -= at.d.Resources.CPU
		if a.queuedCPU < 1e-9 {
			a.queuedCPU = 0
		}
		a.queuedMem -= at.d.Resources.Memory
		a.start(at, after)
	}
	clear(a.queue[len(kept):])
	a.queue = kept
}

var errTimeout = errors.New("the trial's timeout passed")

func hasGPU(gpus []bus.GPU, idx int) bool {
	for _, g := range gpus {
		if g.Index == idx {
			return true
		}
	}
	return false
}

// run runs one attempt, whose timeout began counting at start, and
// publishes its events.
func (a *Agent) run(ctx context.Context, at *attempt, cancel context.CancelCauseFunc, start time.Time, after *bus.AttemptRef) {
	defer a.wg.Done()
	d := at.d
	log := a.log.With("study", d.Study, "trial_id", d.Trial, "attempt", d.Attempt, "method", d.Method)
	dir := a.scratch(d.AttemptRef)
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("scratch directory not removed", "dir", dir, "error", err)
		}
	}()
	resume, note := a.restore(ctx, d, dir, log)
	// The started event is a plain NATS message, sent without waiting:
	// it only moves the attempt to running in status, and the leader
	// applies a finished event that overtakes it and ignores it after.
	started := &bus.Event{AttemptRef: d.AttemptRef, Kind: bus.EventStarted, Node: a.cfg.NodeID, Time: start, Resume: note}
	if resume != nil {
		started.StartStep = resume.Step
	}
	if after != nil {
		// This attempt took the place of one whose outcome is still on
		// its way through JetStream and may reach the leader after this
		// event: say so, so status does not count both as running.
		started.After = []bus.AttemptRef{*after}
	}
	if err := a.cfg.NATS.Publish(bus.StartedSubject(d.Study, d.Trial, started.Node), bus.Encode(started)); err != nil {
		log.Debug("started event not sent", "error", err)
	}
	gpus := make([]string, len(d.GPUs))
	for i, g := range d.GPUs {
		gpus[i] = strconv.Itoa(g)
	}
	req := &sdk.TrialRequest{
		Study: d.Study, TrialID: d.Trial, Attempt: d.Attempt, Params: d.Params,
		Seed: d.Seed, Threads: d.Threads, GPUs: d.GPUs, Config: d.Config, Resume: resume,
	}
	if a.cfg.Checkpoints != nil {
		root := filepath.Join(dir, "new")
		if err := os.MkdirAll(root, 0o700); err != nil {
			log.Error("no checkpoint directory; the attempt runs without checkpoints", "error", err)
		} else {
			req = req.WithCheckpointRoot(root)
		}
	}
	up := newUploader(a, d.AttemptRef, log)
	a.mu.Lock()
	at.up = up
	a.mu.Unlock()
	history := &historyWriter{js: a.js, node: a.cfg.NodeID, log: log}
	report := func(m sdk.Metrics) error {
		// A report the bus would refuse fails the attempt with the
		// reason; a NaN or an infinity travels as a word (bus.NonFinite).
		if err := bus.CheckMetrics(m.Values); err != nil {
			return fmt.Errorf("step %d: %w", m.Step, err)
		}
		finite, nonFinite := bus.SplitFinite(m.Values)
		history.add(&bus.MetricsReport{AttemptRef: d.AttemptRef, Time: time.Now(), Step: m.Step, Values: finite, NonFinite: nonFinite, Checkpoint: m.Checkpoint != ""})
		if m.Checkpoint != "" {
			up.add(m)
		}
		return nil
	}
	res, err := a.cfg.Methods.Run(ctx, methodmgr.Run{
		Method: d.Method, Request: req, Checkpoint: at.ckpt,
		// Trials see only the GPUs assigned to them, none when they asked
		// for none, and use only the threads they were given.
		Env: append(append([]string{"CUDA_VISIBLE_DEVICES=" + strings.Join(gpus, ",")}, threadEnv(d.Threads)...), a.methodEnv(d.Method)...),
	}, report)
	cause := context.Cause(ctx)
	cancel(nil)
	close(at.ended)
	// Checkpoints go out before the outcome, so a preempted attempt's
	// successor finds the latest one recorded.
	up.wait(a.publishing)
	ev := &bus.Event{AttemptRef: d.AttemptRef, Kind: bus.EventFinished, Node: a.cfg.NodeID, Time: time.Now(), Duration: bus.Duration(time.Since(start)),
		StartStep: started.StartStep, Resume: note}
	ev.Outcome, ev.Error = classify(res, err, cause)
	a.mu.Lock()
	stopping := a.stopping
	a.mu.Unlock()
	if stopping && ev.Outcome == bus.OutcomeFailed {
		// The method's process died while the agent was leaving: a
		// signal sent to every process of the job (SLURM's, at a time
		// limit or a cancellation) reached it too. Not its fault.
		ev.Outcome, ev.Error = bus.OutcomePreempted, "the method ended while the agent was stopping: "+ev.Error
	}
	if res != nil && ev.Outcome == bus.OutcomeSucceeded {
		ev.MethodVersion = a.versions.get(a.publishing, a.cfg.Methods, d.Method)
		if err := bus.CheckMetrics(res.Metrics); err != nil {
			ev.Outcome, ev.Error = bus.OutcomeFailed, "the method's result: "+err.Error()
		} else {
			ev.Metrics, ev.NonFinite = bus.SplitFinite(res.Metrics)
		}
	}
	ev.Error = bus.Clip(ev.Error, bus.MaxErrorBytes)
	// Its history is stored before its outcome goes out, so a recorded
	// result's curve is complete.
	if lost := history.flush(a.publishing); lost > 0 {
		log.Error("metric history not stored in time (or no history stream); the attempt's history misses what it held", "messages", lost)
	}
	log.Debug("attempt finished", "outcome", ev.Outcome, "error", ev.Error, "duration", time.Since(start))
	// The method has returned, so its resources are free before the event
	// goes out: the leader reuses the slot as soon as it records the
	// event, and a dispatch arriving before the release would be refused
	// (a stale attempt and a held-back retry). Queued attempts start now,
	// before the event goes out. The attempt stays in running until the
	// event is durable, so heartbeats keep reporting it.
	a.mu.Lock()
	a.usedCPU -= d.Resources.CPU
	if a.usedCPU < 1e-9 {
		a.usedCPU = 0
	}
	a.usedMem -= d.Resources.Memory
	for _, g := range d.GPUs {
		delete(a.usedGPU, g)
	}
	ref := d.AttemptRef
	a.startQueued(&ref)
	a.mu.Unlock()
	a.publish(ev)
	a.mu.Lock()
	delete(a.running, d.AttemptRef)
	a.mu.Unlock()
}

// classify maps a method's return to the outcome the coordinator records.
func classify(res *sdk.Result, err, cause error) (bus.Outcome, string) {
	switch {
	case errors.Is(cause, errTimeout):
		msg := "timed out"
		if err != nil {
			msg += ": " + err.Error()
		}
		return bus.OutcomeTimedOut, msg
	case errors.Is(cause, errStopping):
		// The agent was asked to leave (SIGTERM, as SLURM and spot
		// markets send): the attempt is preempted, not the method's fault.
		return bus.OutcomePreempted, errStopping.Error()
	case errors.Is(cause, errCancelled):
		return bus.OutcomeCancelled, cause.Error()
	case errors.Is(err, sdk.ErrPreempted):
		// The method was interrupted through no fault of its own and
		// asks to run again: preempted, not failed.
		return bus.OutcomePreempted, err.Error()
	case err == nil && res == nil:
		return bus.OutcomeFailed, "the method returned no result"
	case err == nil:
		return bus.OutcomeSucceeded, ""
	}
	var me *methodmgr.MethodError
	if errors.As(err, &me) && me.Kind == methodmgr.InvalidParams {
		return bus.OutcomeInvalid, err.Error()
	}
	var pe *sdk.ParamError
	if errors.As(err, &pe) {
		return bus.OutcomeInvalid, err.Error()
	}
	return bus.OutcomeFailed, err.Error()
}

// publish sends ev to JetStream, retrying until the server acknowledges
// it or a.publishing ends (the shutdown grace is over). The message ID
// makes retries and restarts idempotent. An event given up leaves its
// attempt to the coordinator, which marks it stale and runs it again.
func (a *Agent) publish(ev *bus.Event) bool {
	ctx := a.publishing
	data := bus.Encode(ev)
	subj := bus.EventSubject(ev.Study, ev.Trial, ev.Node)
	log := a.log.With("study", ev.Study, "trial_id", ev.Trial, "attempt", ev.Attempt, "kind", ev.Kind, "outcome", ev.Outcome)
	wait := publishBackoff.Start()
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := a.js.Publish(pctx, subj, data, jetstream.WithMsgID(ev.MsgID()))
		cancel()
		if err == nil {
			return true
		}
		if a.cfg.NATS.IsClosed() {
			log.Error("event not published: the NATS connection is closed", "error", err)
			return false
		}
		if ctx.Err() != nil {
			log.Error("event not published within the shutdown grace; the coordinator will mark the attempt stale", "error", err)
			return false
		}
		log.Warn("publish event failed; retrying", "error", err)
		_ = wait.Wait(ctx) // an ended ctx is reported on the next turn
	}
}

// publishBackoff paces publish: 100ms, doubling to 5s.
var publishBackoff = backoff.Policy{First: 100 * time.Millisecond, Max: 5 * time.Second}

// threadEnv returns the environment that holds a method's numeric
// libraries to the trial's thread budget: OpenMP, OpenBLAS, MKL, Apple's
// vecLib and numexpr otherwise start a thread per core of the host, however
// few cores the trial was given. Nothing when the budget is unknown.
func threadEnv(threads int) []string {
	if threads < 1 {
		return nil
	}
	n := strconv.Itoa(threads)
	return []string{
		"OMP_NUM_THREADS=" + n,
		"OPENBLAS_NUM_THREADS=" + n,
		"MKL_NUM_THREADS=" + n,
		"VECLIB_MAXIMUM_THREADS=" + n,
		"NUMEXPR_NUM_THREADS=" + n,
	}
}

// informer is a MethodRunner that can describe a method (methodmgr.Manager
// does, from a pooled plugin process).
type informer interface {
	Info(ctx context.Context, method string) (*sdk.Info, error)
}

// versionCache remembers what each method says its version is, for
// versionTTL, so a result names the version that produced it without an
// extra call per attempt; a plugin binary replaced on disk is seen within
// the TTL.
type versionCache struct {
	mu sync.Mutex
	m  map[string]versionEntry
}

type versionEntry struct {
	version string
	at      time.Time
}

const versionTTL = 30 * time.Second

// get returns method's version, or "" when the runner cannot tell.
func (c *versionCache) get(ctx context.Context, r MethodRunner, method string) string {
	in, ok := r.(informer)
	if !ok {
		return ""
	}
	c.mu.Lock()
	e, hit := c.m[method]
	c.mu.Unlock()
	if hit && time.Since(e.at) < versionTTL {
		return e.version
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := in.Info(ctx, method)
	if err != nil || info == nil {
		return e.version // the last known, or ""
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]versionEntry{}
	}
	c.m[method] = versionEntry{version: info.Version, at: time.Now()}
	c.mu.Unlock()
	return info.Version
}
