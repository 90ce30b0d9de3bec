package coordinator

import (
	"context"
	"time"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/sweep"
)

// refitInterval is the least time between two refits of one study.
const refitInterval = 2 * time.Second

// liveResamples caps the bootstrap of a live refit; the final analysis
// uses the plan's full count.
const liveResamples = 100

// refitInput carries a finished refit back to the loop.
type refitInput struct {
	study    string
	summary  []api.FitSummary
	err      error
	snapshot int
}

// maybeRefit starts a refit of every study with an analysis plan that got
// new results, at most one per study at a time and one per refitInterval.
// The fit runs on one core in its own goroutine, so dispatch never waits
// for it; the loop only copies the succeeded trials.
func (l *leader) maybeRefit(ctx context.Context, now time.Time) {
	for _, s := range l.order {
		if !s.refitDue || s.refitting || now.Sub(s.lastRefit) < refitInterval {
			continue
		}
		s.refitDue, s.refitting, s.lastRefit = false, true, now
		var trials []api.Trial
		for _, t := range s.trials {
			if t.rec.State == sweep.Succeeded {
				trials = append(trials, t.rec)
			}
		}
		spec, name, dir := s.spec, s.rec.Name, s.rec.Direction
		go func() {
			sum, err := analysis.Run(ctx, spec, trials, dir, analysis.Options{Resamples: liveResamples, Workers: 1})
			l.send(ctx, refitInput{study: name, summary: sum, err: err, snapshot: len(trials)})
		}()
	}
}

// onRefit stores a finished refit in the study record.
func (l *leader) onRefit(in refitInput, now time.Time) {
	s := l.studies[in.study]
	if s == nil {
		return
	}
	s.refitting = false
	if in.err != nil {
		l.log.Warn("refit failed", "study", in.study, "error", in.err)
		return
	}
	s.rec.Analysis = in.summary
	s.rec.Updated = now
	l.dirtyStudies[s] = true
}
