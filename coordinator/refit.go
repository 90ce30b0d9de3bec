package coordinator

import (
	"context"
	"fmt"
	"sort"
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
func (l *leader) onRefit(ctx context.Context, in refitInput, now time.Time) {
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
	l.extendEdges(ctx, s, now)
}

// extendEdges adds one value past each grid edge that a certified-looking
// best run sits on, at most the plan's Extend values per edge, and writes
// the new trials. Each decision is logged and kept in the study record with
// its reason, and the same results always lead to the same decisions.
func (l *leader) extendEdges(ctx context.Context, s *study, now time.Time) {
	plan := s.spec.Analysis.Fit
	if plan.Extend == 0 || s.rec.State == api.StudyCancelled {
		return
	}
	seen := map[api.Edge]bool{}
	var edges []api.Edge
	for _, sum := range s.rec.Analysis {
		for _, u := range sum.Uncert {
			for _, e := range u.Edges {
				if !seen[e] {
					seen[e] = true
					edges = append(edges, e)
				}
			}
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].Axis != edges[j].Axis {
			return edges[i].Axis < edges[j].Axis
		}
		return !edges[i].Last
	})
	changed := false
	for _, e := range edges {
		side := "first"
		if e.Last {
			side = "last"
		}
		done := 0
		for _, x := range s.rec.Extensions {
			if x.By == "edge" && x.Axis == e.Axis && x.Last == e.Last {
				done++
			}
		}
		if done >= plan.Extend {
			continue
		}
		v, ok := sweep.BeyondEdge(s.axis(e.Axis), e.Last)
		if !ok {
			continue
		}
		spec, err := s.spec.Extend(e.Axis, v)
		if err != nil {
			l.log.Warn("cannot extend the grid", "study", s.rec.Name, "axis", e.Axis, "error", err)
			continue
		}
		reason := fmt.Sprintf("a best run sat on %s's %s value", e.Axis, side)
		s.rec.Extensions = append(s.rec.Extensions, api.Extension{By: "edge", Axis: e.Axis, Value: v, Last: e.Last, Reason: reason, Time: now})
		s.setSpec(spec)
		changed = true
		l.log.Info("extending the grid", "study", s.rec.Name, "axis", e.Axis, "value", v, "reason", reason)
	}
	if changed {
		if err := l.expand(ctx, s, now); err != nil {
			l.log.Error("write the extended grid's trials", "study", s.rec.Name, "error", err)
		}
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
