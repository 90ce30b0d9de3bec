package coordinator

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/internal/bus"
	"asymptote.dev/asymptote/sweep"
)

// metricsInput is a streamed metrics report of a study with early stopping.
type metricsInput struct{ r bus.MetricsReport }

// noteEarlyStopping registers a study whose trials may be stopped early:
// it rebuilds the study's rung tables from the trial records and subscribes
// the loop to that study's streamed metrics, once per term. Other studies'
// metrics never reach the leader, however much they stream.
func (l *leader) noteEarlyStopping(ctx context.Context, s *study) error {
	if s.spec.Search == nil || s.spec.Search.ASHA == nil {
		return nil
	}
	s.rungs = map[float64][]float64{}
	for _, t := range s.trials {
		for _, r := range t.rec.Rungs {
			s.rungs[r.Rung] = append(s.rungs[r.Rung], r.Value)
		}
	}
	if _, ok := l.metricSubs[s.rec.Name]; ok {
		return nil
	}
	sub, err := l.c.cfg.NATS.Subscribe(bus.SubjectMetrics+"."+s.rec.Name+".*", func(m *nats.Msg) {
		var r bus.MetricsReport
		if err := bus.Decode(m.Data, &r); err != nil {
			return
		}
		l.send(ctx, metricsInput{r: r})
	})
	if err != nil {
		return fmt.Errorf("subscribe to the metrics of %s: %w", s.rec.Name, err)
	}
	l.metricSubs[s.rec.Name] = sub
	return nil
}

// onMetrics records the rungs a running trial has passed and stops it when
// it ranks outside the best 1/eta of the trials that reached a rung.
func (l *leader) onMetrics(in metricsInput, now time.Time) {
	r := in.r
	s := l.studies[r.Study]
	if s == nil || s.spec.Search == nil || s.spec.Search.ASHA == nil || s.rec.State != api.StudyActive {
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
	g := s.spec.Search.ASHA
	f, ok1 := r.Values[g.Fidelity]
	v, ok2 := r.Values[s.rec.Objective]
	if !ok1 || !ok2 || math.IsNaN(v) {
		return
	}
	maximize := s.rec.Direction == string(sweep.Maximize)
	for _, rung := range g.Rungs {
		if f < rung {
			return
		}
		if slices.ContainsFunc(t.rec.Rungs, func(x api.Rung) bool { return x.Rung == rung }) {
			continue
		}
		t.rec.Rungs = append(t.rec.Rungs, api.Rung{Rung: rung, Fidelity: f, Value: v})
		l.dirtyTrials[t] = true
		s.rungs[rung] = append(s.rungs[rung], v)
		n := len(s.rungs[rung])
		if float64(n) < g.Eta {
			continue // too few to judge yet: ASHA lets early trials through
		}
		vals := slices.Clone(s.rungs[rung])
		slices.Sort(vals)
		if maximize {
			slices.Reverse(vals)
		}
		k := int(math.Ceil(float64(n) / g.Eta))
		cut := vals[k-1]
		if (!maximize && v <= cut) || (maximize && v >= cut) {
			continue
		}
		rank := 1 + slices.IndexFunc(vals, func(x float64) bool { return x == v })
		reason := fmt.Sprintf("stopped early by ASHA at %s=%g (rung %g): %s %.5g ranks %d of %d trials there; the best %d continue (cut-off %.5g)",
			g.Fidelity, f, rung, s.rec.Objective, v, rank, n, k, cut)
		l.stopEarly(t, a, reason, now)
		return
	}
}

// stopEarly cancels a running attempt on its agent and ends the trial with
// the reason.
func (l *leader) stopEarly(t *trial, a *api.Attempt, reason string, now time.Time) {
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
	l.effect(func() { _ = l.c.cfg.NATS.Publish(subj, data) })
	l.log.Info("trial stopped early", "study", s.rec.Name, "trial_id", t.rec.ID, "reason", reason)
}
