package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// noopCPU is what one no-op trial reserves: agents share the host's cores,
// so each agent offers NumCPU/agents cores and runs that many times
// 1/noopCPU trials at once.
const noopCPU = 0.05

// DispatchResult is one end-to-end throughput run.
type DispatchResult struct {
	Agents       int
	Trials       int
	Seconds      float64
	TrialsPerSec float64
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
// turn), started and ended (the agent's clock, the same host here) and
// recorded (the leader's turn that committed the result).
func (c *cluster) stages(ctx context.Context, study string) ([]Stage, error) {
	r, err := c.client.Results(ctx, study)
	if err != nil {
		return nil, fmt.Errorf("bench: results: %w", err)
	}
	var d2s, s2e, e2r []time.Duration
	for _, t := range r.Trials {
		if len(t.Attempts) == 0 || t.Result == nil {
			continue
		}
		a := t.Attempts[len(t.Attempts)-1]
		if a.Started == nil || a.Ended == nil {
			continue
		}
		d2s = append(d2s, a.Started.Sub(a.Dispatched))
		s2e = append(s2e, a.Ended.Sub(*a.Started))
		e2r = append(e2r, t.Result.Recorded.Sub(*a.Ended))
	}
	q := func(name string, xs []time.Duration) Stage {
		if len(xs) == 0 {
			return Stage{Name: name}
		}
		slices.Sort(xs)
		return Stage{Name: name, P50: xs[len(xs)/2], P90: xs[len(xs)*9/10], P99: xs[len(xs)*99/100]}
	}
	return []Stage{
		q("dispatched → started (fenced etcd commit of the turn, the node's batched NATS request, admission, time in the agent's queue)", d2s),
		q("started → ended (plugin RPC)", s2e),
		q("ended → recorded (sync `finished` publish, consume, fenced etcd commit)", e2r),
	}, nil
}

// Dispatch measures no-op synthetic trials per second from submission to
// the last recorded result, through embedded NATS and etcd, a coordinator
// with default settings and agents running the method as reused plugin
// subprocesses.
func Dispatch(ctx context.Context, opts Options, agents, trials int) (DispatchResult, error) {
	opts.setDefaults()
	c, err := startLedCluster(ctx, opts)
	if err != nil {
		return DispatchResult{}, err
	}
	defer c.close()
	share := float64(runtime.NumCPU()) / float64(agents)
	for i := range agents {
		if _, err := c.startAgent(fmt.Sprintf("agent-%d", i+1), share); err != nil {
			return DispatchResult{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.RunTimeout)
	defer cancel()
	if err := c.waitNodes(ctx, agents); err != nil {
		return DispatchResult{}, err
	}
	// Warm the plugin pools so the figure is the steady state, as it is
	// for Optuna, whose workers import it before the clock starts.
	if err := c.warm(ctx, "warm", agents*int(share/noopCPU)); err != nil {
		return DispatchResult{}, err
	}
	start := time.Now()
	if _, err := c.submit(ctx, "dispatch", trials, 0, noopCPU); err != nil {
		return DispatchResult{}, err
	}
	// The figure uses the study's finished timestamp, so the poll only
	// needs to be light on the leader, not frequent.
	st, err := c.waitDone(ctx, "dispatch", 100*time.Millisecond)
	if err != nil {
		return DispatchResult{}, err
	}
	if n := st.Counts["succeeded"]; n != trials {
		return DispatchResult{}, fmt.Errorf("bench: dispatch: %d of %d trials succeeded: %v", n, trials, st.Counts)
	}
	secs := st.Finished.Sub(start).Seconds()
	stages, err := c.stages(ctx, "dispatch")
	if err != nil {
		return DispatchResult{}, err
	}
	return DispatchResult{Agents: agents, Trials: trials, Seconds: secs, TrialsPerSec: float64(trials) / secs, Stale: st.StaleAttempts, Stages: stages}, nil
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
// submission to the last result with the ideal ceil(trials/slots)*sleep.
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
	start := time.Now()
	if _, err := c.submit(ctx, "overhead", trials, sleep, trialCPU); err != nil {
		return OverheadResult{}, err
	}
	expand := time.Since(start)
	st, err := c.waitDone(ctx, "overhead", 100*time.Millisecond)
	if err != nil {
		return OverheadResult{}, err
	}
	if n := st.Counts["succeeded"]; n != trials {
		return OverheadResult{}, fmt.Errorf("bench: overhead: %d of %d trials succeeded: %v", n, trials, st.Counts)
	}
	rounds := (trials + slots - 1) / slots
	ideal := time.Duration(rounds) * sleep
	wall := st.Finished.Sub(start)
	return OverheadResult{
		Trials: trials, Slots: slots, Sleep: sleep, Ideal: ideal, Wall: wall,
		Percent: 100 * (wall.Seconds() - ideal.Seconds()) / ideal.Seconds(),
		Expand:  expand, Stale: st.StaleAttempts,
	}, nil
}
