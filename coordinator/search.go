package coordinator

import (
	"cmp"
	"context"
	"slices"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/strategy"
)

// searchSteps advances the adaptive search of every active study whose
// trials have all finished: it adds the next values the results call for,
// or, when there is nothing left to add, lets the study finish. Deciding
// only when every trial is done makes each decision a function of the spec
// and the results alone, so a resumed study decides the same. What to add
// is the strategy package's decision; the leader only applies it.
func (l *leaderState) searchSteps(ctx context.Context, now time.Time) {
	for _, s := range l.order {
		if s.spec.Search == nil || s.rec.State != api.StudyActive || !s.terminal() || s.searchDone {
			continue
		}
		if b := s.spec.Budget; b != nil && s.used >= b.Limit() {
			l.log.Info("search stops: the budget is spent", "study", s.rec.Name, "used", s.used, "limit", b.Limit())
			s.searchDone = true
			l.maybeFinish(s, now)
			continue
		}
		st, err := strategy.Next(ctx, s.snapshot(true))
		more := err == nil && st.More()
		if err == nil {
			if err = l.applyStep(s, st, now); err != nil && len(st.Add) == 0 {
				// New axis values that could not be expanded end the
				// search; promotions that could not be written are
				// tried again.
				more = false
			}
		}
		if err != nil {
			l.log.Error("adaptive search", "study", s.rec.Name, "error", err)
		}
		if !more {
			s.searchDone = true
			l.releaseHeld(s, nil)
			l.maybeFinish(s, now)
		}
	}
}

// promoteSteps runs the step of promotion ASHA or Hyperband for every active study where a
// trial succeeded since its last one, before the turn schedules: a
// promotion goes to the head of its study's queue, ahead of the first
// rung's waiting trials, and with one slot every study decides the same
// whether its promotions continue or restart. The end of the search is
// left to searchSteps, once every trial has finished.
func (l *leaderState) promoteSteps(ctx context.Context, now time.Time) {
	for _, s := range l.order {
		if !s.promoteDue {
			continue
		}
		s.promoteDue = false
		if !s.spec.Search.Promotes() || s.rec.State != api.StudyActive {
			continue
		}
		if b := s.spec.Budget; b != nil && s.used >= b.Limit() {
			continue // searchSteps ends the search
		}
		st, err := strategy.Next(ctx, s.snapshot(true))
		if err == nil && st.More() {
			if err = l.applyStep(s, st, now); err == nil {
				s.orderPromotions()
			}
		}
		if err != nil {
			s.promoteDue = true // tried again next turn
			l.log.Error("adaptive search", "study", s.rec.Name, "error", err)
		}
	}
}

// orderPromotions puts the waiting promotions of a study that promotes as
// trials succeed ahead of the trials that start there, higher rungs first
// and each rung in the order its promotions were made (by index). It is
// the order a study keeps while it runs and the one a new leader rebuilds
// from the records, so a failover changes no decision.
func (s *study) orderPromotions() {
	g := s.spec.Search
	if !g.Promotes() {
		return
	}
	p := g.Promotion()
	// rank is a waiting promotion's fidelity, or 0 for a trial at its
	// bracket's first rung.
	rank := func(t *trial) float64 {
		f, _ := t.rec.Params[p.Fidelity].(float64)
		start := 0.0
		switch h := g.Hyperband; {
		case h != nil && t.rec.Bracket >= 1 && t.rec.Bracket <= len(h.Rungs):
			start = h.Rungs[t.rec.Bracket-1]
		case g.ASHA != nil && len(g.ASHA.Rungs) > 0:
			start = g.ASHA.Rungs[0]
		}
		if f <= start*(1+1e-9) {
			return 0
		}
		return f
	}
	slices.SortStableFunc(s.ready, func(a, b *trial) int { return cmp.Compare(rank(b), rank(a)) })
}

// snapshot returns what a strategy reads of the study; the trial records
// are copied only with trials (the grid extension reads none).
func (s *study) snapshot(trials bool) *strategy.Study {
	var recs []api.Trial
	if trials {
		recs = make([]api.Trial, len(s.trials))
		for i, t := range s.trials {
			recs[i] = t.rec
		}
	}
	return &strategy.Study{
		Name: s.rec.Name, Spec: s.spec, Objective: s.rec.Objective, Direction: s.rec.Direction,
		Trials: recs, Extensions: s.rec.Extensions, Analysis: s.rec.Analysis,
	}
}

// applyStep applies what a strategy decided, in one place: the axis values
// it added (kept in the study record with their reasons, then expanded
// into trials), the trials it promoted, and its decision with the number
// of trials added.
func (l *leaderState) applyStep(s *study, st strategy.Step, now time.Time) error {
	for _, n := range st.Notes {
		l.log.Info("adaptive search", "study", s.rec.Name, "note", n)
	}
	record := func(added int) {
		if st.Decision == nil {
			return
		}
		d := *st.Decision
		d.Time, d.Added = now, added
		s.rec.Decisions = append(s.rec.Decisions, d)
		l.dirtyStudies[s] = true
		l.log.Info("adaptive search decided", "study", s.rec.Name, "reason", d.Reason, "added", added)
	}
	switch {
	case len(st.Add) > 0:
		record(len(st.Add))
		if err := l.addTrials(s, st.Add, now); err != nil {
			return err
		}
		l.continueFrom(s, st.Continue)
		if st.Decision != nil && len(st.Decision.Stopped) > 0 {
			// Only what the decision stopped: releaseHeld lets go of
			// every held checkpoint when given none.
			l.releaseHeld(s, st.Decision.Stopped)
		}
		return nil
	case st.Spec != nil:
		for _, x := range st.Extend {
			x.Time = now
			s.rec.Extensions = append(s.rec.Extensions, x)
			l.log.Info("adding an axis value", "study", s.rec.Name, "by", x.By, "axis", x.Axis, "value", x.Value, "reason", x.Reason)
		}
		before := len(s.trials)
		s.setSpec(st.Spec)
		if err := l.expand(s, now); err != nil {
			return err
		}
		record(len(s.trials) - before)
		return nil
	}
	record(0)
	return nil
}
