package coordinator

import (
	"fmt"
	"time"

	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/strategy"
	"asymptote.dev/asymptote/sweep"
)

// account brings the budgets of the studies of changed trials up to date.
func (l *leaderState) account() {
	for t := range l.dirtyTrials {
		if t.study.spec.Budget == nil {
			continue
		}
		u := strategy.Usage(t.study.spec, &t.rec)
		t.study.used += u - t.usage
		t.usage = u
	}
}

// spendOut cancels the waiting trials of every study whose budget is
// spent: attempts already running finish, nothing new starts.
func (l *leaderState) spendOut(now time.Time) {
	for _, s := range l.order {
		b := s.spec.Budget
		if b == nil || s.used < b.Limit() || s.rec.State != api.StudyActive || s.counts[sweep.Pending] == 0 {
			continue
		}
		reason := fmt.Sprintf("the study's compute budget is spent (%.4g of %.4g %s)", s.used, b.Limit(), b.Kind())
		n := 0
		for _, t := range s.trials {
			if t.rec.State == sweep.Pending {
				t.rec.Error = reason
				l.setState(t, sweep.Cancelled, now)
				n++
			}
		}
		l.log.Info("budget spent; cancelled the waiting trials", "study", s.rec.Name, "cancelled", n, "used", s.used, "limit", b.Limit())
	}
}

// budgetStatus reports a study's budget and where it went, by the values
// of each grid axis.
func budgetStatus(s *study) *api.BudgetStatus {
	b := s.spec.Budget
	if b == nil {
		return nil
	}
	st := &api.BudgetStatus{Kind: b.Kind(), Limit: b.Limit(), Used: s.used}
	for _, a := range s.spec.Axes {
		au := api.AxisUsage{Axis: a.Name}
		idx := map[string]int{}
		for _, v := range a.Values {
			idx[fmt.Sprint(v)] = len(au.Values)
			au.Values = append(au.Values, api.ValueUsage{Value: fmt.Sprint(v)})
		}
		for _, t := range s.trials {
			if i, ok := idx[fmt.Sprint(t.rec.Params[a.Name])]; ok {
				au.Values[i].Used += t.usage
			}
		}
		st.ByAxis = append(st.ByAxis, au)
	}
	return st
}
