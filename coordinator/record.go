package coordinator

import (
	"fmt"
	"math"
	"slices"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/backoff"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/sweep"
)

// maxStale bounds how often one trial may be lost with its agents before
// it is failed; a trial that kills every agent it touches must not cycle
// forever.
const maxStale = 10

// maxPreempted bounds how often one trial may be preempted before it is
// failed: spot markets and SLURM preempt often, so the bound is generous,
// but a method that asks to run again every time must end.
const maxPreempted = 100

// quarantineRedelivery is how long the stream waits before offering again
// an outcome of a quarantined study.
const quarantineRedelivery = 5 * time.Second

// maxMetrics bounds the metrics kept in one result, so one trial record
// stays far below etcd's request limit.
const maxMetrics = 256

// onEvent records a durable trial event. Recording is idempotent: a
// redelivered or replayed event finds its effect already in the record and
// changes nothing, and an event of a superseded attempt is kept as late
// without touching the current one.
func (l *leaderState) onEvent(in eventInput, now time.Time) {
	ev := in.ev
	s := l.studies[ev.Study]
	ack := func() {
		if in.msg != nil { // started events come without a JetStream message
			l.do(ack{msg: in.msg, study: s})
		}
	}
	if s != nil && s.quarantined() {
		// Nothing of a frozen study is recorded: its outcomes wait in
		// the stream until it is resumed or deleted.
		if in.msg != nil {
			l.do(nak{in.msg, quarantineRedelivery})
		}
		return
	}
	if s == nil {
		l.orphan(in, "no study named "+ev.Study+" (never submitted, or deleted)", now)
		return
	}
	t := s.byID[ev.Trial]
	if t == nil {
		l.orphan(in, "study "+ev.Study+" has no trial "+ev.Trial, now)
		return
	}
	if from, named := bus.Sender(in.subject); named && from != ev.Node {
		// The bus lets an agent publish only under its own node: an
		// event that claims another node is forged.
		l.orphan(in, fmt.Sprintf("sent on node %s's subject but claims node %s", from, ev.Node), now)
		return
	}
	if a := t.attempt(ev.Attempt); a != nil && a.Node != ev.Node {
		// Only the agent an attempt was dispatched to may report it. (An
		// attempt the trial never had is kept as a late result below,
		// for the record, and never touches the trial's state.)
		l.orphan(in, fmt.Sprintf("attempt %d was dispatched to node %s, not %s", ev.Attempt, a.Node, ev.Node), now)
		return
	}
	cur := t.rec.Current()
	current := cur != nil && cur.N == ev.Attempt && !cur.State.Terminal()
	switch ev.Kind {
	case bus.EventStarted:
		for _, r := range ev.After {
			if o := l.studies[r.Study]; o != nil {
				if e := o.byID[r.Trial]; e != nil && e.node != nil && e.node.rec.ID == ev.Node && e.rec.Attempt == r.Attempt {
					e.ending = true
				}
			}
		}
		if current && cur.State == api.AttemptDispatched {
			cur.State = api.AttemptRunning
			at := ev.Time
			cur.Started = &at
			cur.StartStep, cur.Resume = ev.StartStep, bus.Clip(ev.Resume, bus.MaxErrorBytes)
			l.noteStart(t, cur)
			l.setState(t, sweep.Running, now)
			l.dirtyTrials[t] = true
		}
	case bus.EventCheckpoint:
		l.recordCheckpoint(t, ev, current, now)
	case bus.EventFinished:
		if current {
			l.finish(t, cur, ev, now)
		} else {
			l.recordLate(t, ev, now)
		}
	}
	ack()
}

// finish applies the outcome of the current attempt.
func (l *leaderState) finish(t *trial, a *api.Attempt, ev bus.Event, now time.Time) {
	s := t.study
	end := ev.Time
	a.Ended = &end
	// The started event is not durable: the finished one says again
	// where the attempt began.
	if ev.StartStep > 0 || ev.Resume != "" {
		a.StartStep, a.Resume = ev.StartStep, bus.Clip(ev.Resume, bus.MaxErrorBytes)
	}
	l.noteStart(t, a)
	// An agent clips its errors; a message from elsewhere is clipped
	// here, so an attempt's record stays small.
	ev.Error = bus.Clip(ev.Error, bus.MaxErrorBytes)
	a.Error = ev.Error
	if t.node != nil {
		t.node.release(t)
	}
	s.running--
	l.dirtyTrials[t] = true
	if ev.Outcome != bus.OutcomeCancelled && ev.Outcome != bus.OutcomeLost && ev.Outcome != bus.OutcomePreempted {
		s.noteSlotTime(time_(ev.Duration))
	}
	switch ev.Outcome {
	case bus.OutcomeSucceeded:
		obj, ok := ev.Metrics[s.rec.Objective]
		if word, bad := ev.NonFinite[s.rec.Objective]; bad {
			a.State = api.AttemptFailed
			a.Error = fmt.Sprintf("the method reported %s = %s; the objective must be a finite number (did training diverge?)", s.rec.Objective, word)
			l.retryOrFail(t, a.Error, now)
			return
		}
		if !ok || math.IsNaN(obj) {
			a.State = api.AttemptFailed
			a.Error = fmt.Sprintf("the method reported no %q metric (the study's objective); it reported %s", s.rec.Objective, metricNames(ev.Metrics))
			l.retryOrFail(t, a.Error, now)
			return
		}
		a.State = api.AttemptSucceeded
		t.rec.Result = &api.Result{
			Attempt:       a.N,
			Node:          ev.Node,
			Objective:     &obj,
			Metrics:       trimMetrics(ev.Metrics),
			NonFinite:     ev.NonFinite,
			MethodVersion: ev.MethodVersion,
			Recorded:      now,
			Duration:      time_(ev.Duration).Seconds(),
		}
		t.rec.Error = ""
		l.setState(t, sweep.Succeeded, now)
	case bus.OutcomeInvalid:
		a.State = api.AttemptInvalid
		t.rec.Error = "invalid parameters: " + ev.Error
		t.rec.Failures++
		l.setState(t, sweep.Failed, now)
	case bus.OutcomeFailed, bus.OutcomeTimedOut:
		a.State = api.AttemptFailed
		if ev.Outcome == bus.OutcomeTimedOut {
			a.State = api.AttemptTimedOut
		}
		l.dropContinuation(t, a, bus.Clip(ev.Error, 200))
		l.retryOrFail(t, ev.Error, now)
	case bus.OutcomePreempted:
		l.preempt(t, a, ev.Error, now)
	case bus.OutcomeCancelled, bus.OutcomeLost:
		// The agent gave the attempt up without the trial being
		// cancelled (a cancelled trial's attempt is no longer current):
		// nothing is known about the method, so run it again.
		l.markStale(t, a, "agent gave the attempt up: "+ev.Error, now)
	}
}

// retryOrFail counts a method failure and schedules a retry with backoff,
// or fails the trial when its retries are spent.
func (l *leaderState) retryOrFail(t *trial, reason string, now time.Time) {
	t.rec.Failures++
	if t.rec.Failures > t.study.spec.Retries {
		t.rec.Error = fmt.Sprintf("failed %d times; last error: %s", t.rec.Failures, reason)
		l.setState(t, sweep.Failed, now)
		return
	}
	nb := now.Add(retryBackoff.Delay(t.rec.Failures))
	t.rec.NotBefore = &nb
	t.rec.Error = reason
	l.setState(t, sweep.Pending, now)
}

// retryBackoff holds a failed trial back before its next attempt: 1s,
// 2s, 4s, ... up to 5 minutes, by its count of failures.
var retryBackoff = backoff.Policy{First: time.Second, Max: 5 * time.Minute}

// markStale records that the current attempt was lost through no fault of
// the method and returns the trial to the queue.
func (l *leaderState) markStale(t *trial, a *api.Attempt, reason string, now time.Time) {
	l.markStaleAfter(t, a, reason, now, 0)
}

// markStaleAfter is markStale with the next attempt held back for delay.
func (l *leaderState) markStaleAfter(t *trial, a *api.Attempt, reason string, now time.Time, delay time.Duration) {
	if t.node != nil {
		t.node.release(t)
		t.study.running--
	}
	a.State = api.AttemptStale
	a.Error = reason
	if a.Ended == nil {
		end := now
		a.Ended = &end
	}
	t.rec.Stale++
	t.study.stale++
	l.dirtyTrials[t] = true
	if t.rec.Stale >= maxStale {
		t.rec.Error = fmt.Sprintf("lost %d attempts to dead or unreachable agents; last: %s", t.rec.Stale, reason)
		l.setState(t, sweep.Failed, now)
		return
	}
	t.rec.NotBefore = nil
	if delay > 0 {
		nb := now.Add(delay)
		t.rec.NotBefore = &nb
	}
	l.setState(t, sweep.Pending, now)
}

// preempt records that the current attempt was given up on purpose (its
// agent was asked to leave, or the method asked to run again) and puts the
// trial back at the head of its study's queue, using no retry: it was the
// next to run before, and is again.
func (l *leaderState) preempt(t *trial, a *api.Attempt, reason string, now time.Time) {
	a.State = api.AttemptPreempted
	a.Error = "preempted: " + reason
	t.rec.Preempted++
	t.study.preempted++
	if t.rec.Preempted >= maxPreempted {
		// A method that asks to run again every time (a script that
		// always exits 75) must not cycle forever.
		t.rec.Error = fmt.Sprintf("preempted %d times; last: %s; a method that asks to run again each time never finishes: check why it exits with 75 or returns ErrPreempted", t.rec.Preempted, reason)
		l.setState(t, sweep.Failed, now)
		return
	}
	t.rec.NotBefore = nil
	l.setState(t, sweep.Pending, now)
	t.study.toFront(t)
}

// recordLate keeps an outcome of a superseded attempt for the record.
func (l *leaderState) recordLate(t *trial, ev bus.Event, now time.Time) {
	if ev.Kind != bus.EventFinished {
		return
	}
	if r := t.rec.Result; r != nil && r.Attempt == ev.Attempt && ev.Outcome == bus.OutcomeSucceeded {
		return // a duplicate of the recorded result
	}
	for _, a := range t.rec.Attempts {
		if a.N == ev.Attempt && a.State.Terminal() && a.State != api.AttemptStale && a.State != api.AttemptCancelled {
			return // a duplicate of an outcome already applied
		}
		if a.N == ev.Attempt && a.State == api.AttemptCancelled && ev.Outcome != bus.OutcomeSucceeded {
			return // the agent confirming a stop the leader asked for
		}
	}
	if slices.ContainsFunc(t.rec.Late, func(x api.LateResult) bool {
		return x.Attempt == ev.Attempt && x.Outcome == string(ev.Outcome)
	}) {
		return // already kept
	}
	if len(t.rec.Late) >= api.MaxLate {
		return
	}
	t.rec.Late = append(t.rec.Late, api.LateResult{
		Attempt: ev.Attempt, Node: ev.Node, Outcome: string(ev.Outcome),
		Metrics: trimMetrics(ev.Metrics), Error: ev.Error, Received: now,
	})
	t.study.late++
	l.dirtyTrials[t] = true
	l.log.Info("late result recorded", "study", t.rec.Study, "trial_id", t.rec.ID, "attempt", ev.Attempt, "current", t.rec.Attempt)
}

func trimMetrics(m map[string]float64) map[string]float64 {
	if len(m) <= maxMetrics {
		return m
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]float64, maxMetrics)
	for _, k := range keys[:maxMetrics] {
		out[k] = m[k]
	}
	return out
}

func metricNames(m map[string]float64) string {
	if len(m) == 0 {
		return "no metrics"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return fmt.Sprintf("%v", keys)
}

func time_(d bus.Duration) time.Duration { return time.Duration(d) }
