package coordinator

import (
	"context"
	"time"

	"asymptote.dev/asymptote/internal/analysis"
	"asymptote.dev/asymptote/internal/api"
	"asymptote.dev/asymptote/strategy"
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
		trials := s.succeeded()
		spec, name, dir := s.spec, s.rec.Name, s.rec.Direction
		go func() {
			sum, err := analysis.Run(ctx, spec, trials, dir, analysis.Options{Resamples: liveResamples, Workers: 1})
			l.send(ctx, refitInput{study: name, summary: sum, err: err, snapshot: len(trials)})
		}()
	}
}

// onRefit stores a finished refit in the study record, and extends the
// tuned axes where the plan allows it and a best run sits on an edge.
func (l *leaderState) onRefit(in refitInput, now time.Time) {
	s := l.studies[in.study]
	if s == nil {
		return
	}
	s.refitting = false
	defer l.maybeFinish(s, now)
	if in.err != nil {
		l.log.Warn("refit failed", "study", in.study, "error", in.err)
		return
	}
	s.rec.Analysis = in.summary
	s.rec.Updated = now
	l.dirtyStudies[s] = true
	l.extendEdges(s, now)
}

// extendEdges adds one value past each grid edge that a certified-looking
// best run sits on (strategy.Edges), and writes the new trials. Each value
// is logged and kept in the study record with its reason, and the same
// results always lead to the same values.
func (l *leaderState) extendEdges(s *study, now time.Time) {
	if s.rec.State == api.StudyCancelled {
		return
	}
	st := strategy.Edges(s.snapshot(false))
	if err := l.applyStep(s, st, now); err != nil {
		l.log.Error("write the extended grid's trials", "study", s.rec.Name, "error", err)
	}
}

// withExtensions applies a study's recorded extensions to a freshly parsed
// spec; a value the spec already has is skipped.
func withExtensions(spec *sweep.Spec, exts []api.Extension) *sweep.Spec {
	for _, x := range exts {
		if next, err := spec.Extend(x.Axis, x.Value); err == nil {
			spec = next
		}
	}
	return spec
}
