package coordinator

import (
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/strategy"
	"asymptote.dev/asymptote/sweep"
)

// metricsInput is a streamed metrics report of a study with early
// stopping, and the subject it came on, which names its sender.
type metricsInput struct {
	r       bus.MetricsReport
	subject string
}

// noteEarlyStopping registers a study whose trials may be stopped early:
// it rebuilds the study's rung table from the trial records and has the
// term subscribe the loop to that study's streamed metrics, once per term. Other studies' metrics never reach the leader,
// however much they stream.
func (l *leaderState) noteEarlyStopping(s *study) {
	if s.spec.Search.EarlyStopping() == nil {
		return
	}
	// Rebuilt from the cached records in place: a snapshot would copy
	// every record of the study at each submission.
	s.rungs = strategy.Rungs{}
	for _, t := range s.trials {
		s.rungs.Add(t.rec.Rungs)
	}
	l.do(watchMetrics{s.rec.Name})
}

// onMetrics records the rungs a running trial has passed and stops it when
// ASHA's table (strategy.Rungs) says it ranks outside the best 1/eta of the
// trials that reached a rung.
func (l *leaderState) onMetrics(in metricsInput, now time.Time) {
	r := in.r
	s := l.studies[r.Study]
	if s == nil || s.spec.Search.EarlyStopping() == nil || s.rec.State != api.StudyActive {
		return
	}
	t := s.byID[r.Trial]
	if t == nil {
		return
	}
	a := t.rec.Current()
	if a == nil || a.N != r.Attempt || a.State.Terminal() {
		return
	}
	if from, named := bus.Sender(in.subject); named && from != a.Node {
		// Only the attempt's own agent reports its metrics: another
		// node's reports must not stop it early. A secured bus lets an
		// agent publish only under its own node, so this is a forgery
		// or a confusion; it is dropped, as a stale report is.
		l.log.Warn("dropping metrics sent on another node's subject", "study", r.Study, "trial_id", r.Trial, "attempt", r.Attempt, "node_id", from, "attempt_node", a.Node)
		return
	}
	reached, stop := s.rungs.Judge(s.spec.Search.ASHA, s.rec.Objective, s.rec.Direction == string(sweep.Maximize), t.rec.Rungs, r.Values)
	if len(reached) > 0 {
		t.rec.Rungs = append(t.rec.Rungs, reached...)
		l.dirtyTrials[t] = true
	}
	if stop != "" {
		l.stopEarly(t, a, stop, now)
	}
}

// stopEarly cancels a running attempt on its agent and ends the trial with
// the reason.
func (l *leaderState) stopEarly(t *trial, a *api.Attempt, reason string, now time.Time) {
	s := t.study
	a.State = api.AttemptCancelled
	end := now
	a.Ended = &end
	a.Error = reason
	node := a.Node
	if t.node != nil {
		t.node.release(t)
		s.running--
	}
	t.rec.Error = reason
	l.setState(t, sweep.Cancelled, now)
	data := bus.Encode(&bus.Cancel{Attempts: []bus.AttemptRef{t.ref()}, Reason: reason})
	subj := bus.CancelSubject(node)
	l.do(publish{subj, data})
	l.log.Info("trial stopped early", "study", s.rec.Name, "trial_id", t.rec.ID, "reason", reason)
}
