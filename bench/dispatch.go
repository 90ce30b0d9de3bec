package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"asymptote.dev/asymptote/internal/api"
)

// noopCPU is what one no-op trial reserves. An agent with s slots offers
// s × noopCPU cores, so it runs s trials at once (and, with the default
// queue of 1× its resources, holds s more queued).
const noopCPU = 0.05

// DefaultSlots is the concurrency of asymptote's own configuration in the
// suite: 20 no-op trials per core (40 on 2 cores), shared by the agents,
// as the dispatch figure has always been measured.
func DefaultSlots() int { return 20 * numCPU() }

// DispatchConfig is one asymptote configuration of the dispatch run.
type DispatchConfig struct {
	// Agents is how many agents run; Slots how many trials they run at
	// once in all, spread evenly (each agent offers its share of Slots ×
	// noopCPU cores).
	Agents, Slots int
	// NATSSyncInterval is devcluster.Config.NATSSyncInterval: 0 (the
	// default) syncs every JetStream write before acknowledging it.
	NATSSyncInterval time.Duration
	// Secure runs the cluster as `asymptote dev -secure` does: TLS with
	// client certificates on NATS and etcd, and every process its own
	// identity with its least-privilege permissions.
	Secure bool
}

func (c DispatchConfig) String() string {
	s := fmt.Sprintf("%d agent(s) × %d slot(s) in all", c.Agents, c.Slots)
	if c.NATSSyncInterval > 0 {
		s += fmt.Sprintf(", JetStream flushed every %s", c.NATSSyncInterval)
	}
	if c.Secure {
		s += ", TLS and identities"
	}
	return s
}

// perAgent spreads the slots over the agents, the first ones taking one
// more where they do not divide evenly.
func (c DispatchConfig) perAgent() []int {
	out := make([]int, c.Agents)
	for i := range out {
		out[i] = c.Slots / c.Agents
		if i < c.Slots%c.Agents {
			out[i]++
		}
	}
	return out
}

// DispatchResult is one end-to-end throughput run.
type DispatchResult struct {
	DispatchConfig
	// Rep is the repetition of the suite the run belongs to.
	Rep    int
	Trials int
	// Seconds is the measured window: from just before the submit request
	// to when etcd had committed the last result and the study's done
	// state (seen by a watch, see commitWatch).
	Seconds      float64
	TrialsPerSec float64
	// LeaderFinished is how much earlier the study's `finished`
	// timestamp is than the window's end: the leader stamps it in the
	// turn that commits it, before the commit returns (the window used it
	// before, and ended that much early).
	LeaderFinished time.Duration
	// Stale counts attempts lost and run again (a refused dispatch, for
	// one): each costs a retry held back by a second.
	Stale int
	// Stages breaks each trial's path down by its attempt timestamps.
	Stages []Stage
}

// Stage is the distribution of one leg of a trial's path over a run.
type Stage struct {
	Name          string
	P50, P90, P99 time.Duration
}

// stages reads every trial's attempt timestamps: dispatched (the leader's
// turn), started and ended (the agent's clock, the same host here),
// recorded (the leader's turn that applied the result) and committed
// (when the watch saw the result's write land in etcd).
func (c *cluster) stages(ctx context.Context, study string, cm commits) ([]Stage, error) {
	r, err := c.client.Results(ctx, study)
	if err != nil {
		return nil, fmt.Errorf("bench: results: %w", err)
	}
	return stagesOf(r.Trials, cm), nil
}

// stagesOf is the distribution of each leg over trials, their commits as
// cm saw them.
func stagesOf(trials []api.Trial, cm commits) []Stage {
	var d2s, s2e, e2c, r2c []time.Duration
	for _, t := range trials {
		if len(t.Attempts) == 0 || t.Result == nil {
			continue
		}
		a := t.Attempts[len(t.Attempts)-1]
		committed, ok := cm.Result[t.ID]
		if a.Started == nil || a.Ended == nil || !ok {
			continue
		}
		d2s = append(d2s, a.Started.Sub(a.Dispatched))
		s2e = append(s2e, a.Ended.Sub(*a.Started))
		e2c = append(e2c, committed.Sub(*a.Ended))
		r2c = append(r2c, committed.Sub(cm.Recorded[t.ID]))
	}
	q := func(name string, xs []time.Duration) Stage {
		if len(xs) == 0 {
			return Stage{Name: name}
		}
		slices.Sort(xs)
		return Stage{Name: name, P50: xs[len(xs)/2], P90: xs[len(xs)*9/10], P99: xs[len(xs)*99/100]}
	}
	return []Stage{
		q(stageDispatched, d2s),
		q(stageRPC, s2e),
		q(stageRecorded, e2c),
		q(stageCommit, r2c),
	}
}

// The stages' names, as the report prints them.
const (
	stageDispatched = "dispatched → started (fenced etcd commit of the turn, the node's batched NATS request, admission, time in the agent's queue)"
	stageRPC        = "started → ended (plugin RPC)"
	stageRecorded   = "ended → recorded (sync `finished` publish, consume, the leader's turn, its fenced etcd commit returned)"
	stageCommit     = "of which the leader's result timestamp → its etcd commit returned"
)

// Dispatch measures no-op synthetic trials per second from submission to
// the last result committed to etcd, through embedded NATS and etcd, a
// coordinator with default settings and agents running the method as
// reused plugin subprocesses.
func Dispatch(ctx context.Context, opts Options, cfg DispatchConfig, trials int) (DispatchResult, error) {
	opts.setDefaults()
	if cfg.Agents <= 0 || cfg.Slots < cfg.Agents {
		return DispatchResult{}, fmt.Errorf("bench: dispatch: %d slot(s) on %d agent(s): every agent needs one", cfg.Slots, cfg.Agents)
	}
	opts.natsSync = cfg.NATSSyncInterval
	if cfg.Secure {
		for i := range cfg.Agents {
			opts.secureAgents = append(opts.secureAgents, fmt.Sprintf("agent-%d", i+1))
		}
	}
	c, err := startLedCluster(ctx, opts)
	if err != nil {
		return DispatchResult{}, err
	}
	defer c.close()
	for i, s := range cfg.perAgent() {
		if _, err := c.startAgent(fmt.Sprintf("agent-%d", i+1), float64(s)*noopCPU); err != nil {
			return DispatchResult{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.RunTimeout)
	defer cancel()
	if err := c.waitNodes(ctx, cfg.Agents); err != nil {
		return DispatchResult{}, err
	}
	// Warm the plugin pools so the figure is the steady state, as it is
	// for Optuna, whose workers import it before the clock starts.
	if err := c.warm(ctx, "warm", cfg.Slots); err != nil {
		return DispatchResult{}, err
	}
	w, err := c.watchCommits(ctx, "dispatch", trials)
	if err != nil {
		return DispatchResult{}, err
	}
	start := time.Now()
	if _, err := c.submit(ctx, "dispatch", trials, 0, noopCPU); err != nil {
		w.close()
		return DispatchResult{}, err
	}
	cm, err := w.wait(ctx)
	if err != nil {
		return DispatchResult{}, err
	}
	// Committed, so the leader has it: one status call for the counts.
	st, err := c.waitDone(ctx, "dispatch", 100*time.Millisecond)
	if err != nil {
		return DispatchResult{}, err
	}
	if n := st.Counts["succeeded"]; n != trials {
		return DispatchResult{}, fmt.Errorf("bench: dispatch: %d of %d trials succeeded: %v", n, trials, st.Counts)
	}
	secs := cm.End.Sub(start).Seconds()
	stages, err := c.stages(ctx, "dispatch", cm)
	if err != nil {
		return DispatchResult{}, err
	}
	res := DispatchResult{DispatchConfig: cfg, Trials: trials, Seconds: secs, TrialsPerSec: float64(trials) / secs, Stale: st.StaleAttempts, Stages: stages}
	if st.Finished != nil {
		res.LeaderFinished = cm.End.Sub(*st.Finished)
	}
	return res, nil
}

// watchCommits watches the etcd server directly, not through the
// coordinator's proxy, so killing a coordinator does not cut it.
func (c *cluster) watchCommits(ctx context.Context, study string, trials int) (*commitWatch, error) {
	if c.watcher == nil {
		cli, err := c.etcd(c.node.EtcdEndpoints)
		if err != nil {
			return nil, err
		}
		c.watcher = cli
	}
	return watchCommits(ctx, c.watcher, study, trials)
}

// warm runs a study of n short trials that occupy every slot at once, so
// each agent's plugin pool holds a process per slot afterwards.
func (c *cluster) warm(ctx context.Context, name string, n int) error {
	if _, err := c.submit(ctx, name, n, 300*time.Millisecond, noopCPU); err != nil {
		return err
	}
	_, err := c.waitDone(ctx, name, 50*time.Millisecond)
	return err
}

// OverheadResult is the short-trial overhead run.
type OverheadResult struct {
	Trials  int
	Slots   int
	Sleep   time.Duration
	Ideal   time.Duration
	Wall    time.Duration
	Percent float64
	// Expand is the submit call's duration (expanding the spec and
	// writing every trial), part of Wall; Stale counts attempts run again.
	Expand time.Duration
	Stale  int
}

// Overhead runs trials that each sleep for sleep on agents with slots
// concurrent trial slots in all, and compares the wall time from
// submission to the last result's etcd commit with the ideal
// ceil(trials/slots)*sleep.
func Overhead(ctx context.Context, opts Options, trials, agents, slots int, sleep time.Duration) (OverheadResult, error) {
	opts.setDefaults()
	c, err := startLedCluster(ctx, opts)
	if err != nil {
		return OverheadResult{}, err
	}
	defer c.close()
	perAgent := slots / agents
	cpu := float64(runtime.NumCPU()) / float64(agents)
	trialCPU := cpu / float64(perAgent)
	for i := range agents {
		if _, err := c.startAgent(fmt.Sprintf("agent-%d", i+1), cpu); err != nil {
			return OverheadResult{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.RunTimeout)
	defer cancel()
	if err := c.waitNodes(ctx, agents); err != nil {
		return OverheadResult{}, err
	}
	slots = perAgent * agents
	if _, err := c.submit(ctx, "warm", slots, 300*time.Millisecond, trialCPU); err != nil {
		return OverheadResult{}, err
	}
	if _, err := c.waitDone(ctx, "warm", 50*time.Millisecond); err != nil {
		return OverheadResult{}, err
	}
	w, err := c.watchCommits(ctx, "overhead", trials)
	if err != nil {
		return OverheadResult{}, err
	}
	start := time.Now()
	if _, err := c.submit(ctx, "overhead", trials, sleep, trialCPU); err != nil {
		w.close()
		return OverheadResult{}, err
	}
	expand := time.Since(start)
	cm, err := w.wait(ctx)
	if err != nil {
		return OverheadResult{}, err
	}
	st, err := c.waitDone(ctx, "overhead", 100*time.Millisecond)
	if err != nil {
		return OverheadResult{}, err
	}
	if n := st.Counts["succeeded"]; n != trials {
		return OverheadResult{}, fmt.Errorf("bench: overhead: %d of %d trials succeeded: %v", n, trials, st.Counts)
	}
	rounds := (trials + slots - 1) / slots
	ideal := time.Duration(rounds) * sleep
	// The wall time ends, as the dispatch window does, when etcd has
	// committed the last result.
	wall := cm.End.Sub(start)
	return OverheadResult{
		Trials: trials, Slots: slots, Sleep: sleep, Ideal: ideal, Wall: wall,
		Percent: 100 * (wall.Seconds() - ideal.Seconds()) / ideal.Seconds(),
		Expand:  expand, Stale: st.StaleAttempts,
	}, nil
}
